// SPDX-License-Identifier: GPL-2.0
/* waitdemo.ko: the kernel waits that have no mutex/rwsem waiter record, each
 * made deterministic for hangscope's tests (scripts/linux-guest.sh, the
 * "waits" guest):
 *
 *   wd_rt_holder  holds waitdemo_rt (rt_mutex), then waits on the completion
 *                 waitdemo_done that nobody completes;
 *   wd_rt_waiter  blocks in rt_mutex_lock(waitdemo_rt) behind wd_rt_holder;
 *   wd_wq_waiter  blocks in wait_event(waitdemo_wq, ...) that nobody wakes;
 *   wd_pg_holder  locks page 0 of page_path (a tmpfs file) and sleeps;
 *   wd_pg_waiter  blocks in lock_page on that page (io_schedule);
 *   wd_bh_holder  locks waitdemo_bh, a buffer_head, and sleeps;
 *   wd_bh_waiter  blocks in lock_buffer on it (io_schedule).
 */
#include <linux/module.h>
#include <linux/kthread.h>
#include <linux/rtmutex.h>
#include <linux/completion.h>
#include <linux/wait.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/pagemap.h>
#include <linux/shmem_fs.h>
#include <linux/buffer_head.h>
#include <linux/sched.h>

static DEFINE_RT_MUTEX(waitdemo_rt);
static DECLARE_COMPLETION(waitdemo_done);
static DECLARE_WAIT_QUEUE_HEAD(waitdemo_wq);
static int waitdemo_go;
static struct buffer_head *waitdemo_bh;
static struct page *waitdemo_page;
static struct file *waitdemo_file;

static char *page_path = "/run/waits/pagefile";
module_param(page_path, charp, 0444);

/* Sleeps forever in S, holding whatever its caller took. */
static noinline void waitdemo_sleep_forever(void)
{
	for (;;)
		schedule_timeout_interruptible(MAX_SCHEDULE_TIMEOUT);
}

static noinline int waitdemo_rt_holder(void *unused)
{
	rt_mutex_lock(&waitdemo_rt);
	wait_for_completion(&waitdemo_done);	/* never completed */
	rt_mutex_unlock(&waitdemo_rt);
	return 0;
}

static noinline int waitdemo_rt_waiter(void *unused)
{
	msleep(500);
	rt_mutex_lock(&waitdemo_rt);		/* owner: wd_rt_holder */
	rt_mutex_unlock(&waitdemo_rt);
	return 0;
}

static noinline int waitdemo_wq_waiter(void *unused)
{
	wait_event(waitdemo_wq, READ_ONCE(waitdemo_go));	/* never woken */
	return 0;
}

static noinline int waitdemo_pg_holder(void *unused)
{
	lock_page(waitdemo_page);
	waitdemo_sleep_forever();
	return 0;
}

static noinline int waitdemo_pg_waiter(void *unused)
{
	msleep(500);
	lock_page(waitdemo_page);		/* held by wd_pg_holder */
	unlock_page(waitdemo_page);
	return 0;
}

static noinline int waitdemo_bh_holder(void *unused)
{
	lock_buffer(waitdemo_bh);
	waitdemo_sleep_forever();
	return 0;
}

static noinline int waitdemo_bh_waiter(void *unused)
{
	msleep(500);
	lock_buffer(waitdemo_bh);		/* held by wd_bh_holder */
	unlock_buffer(waitdemo_bh);
	return 0;
}

static int __init waitdemo_init(void)
{
	waitdemo_file = filp_open(page_path, O_RDWR | O_CREAT, 0644);
	if (IS_ERR(waitdemo_file))
		return PTR_ERR(waitdemo_file);
	waitdemo_page = shmem_read_mapping_page(waitdemo_file->f_mapping, 0);
	if (IS_ERR(waitdemo_page))
		return PTR_ERR(waitdemo_page);
	waitdemo_bh = alloc_buffer_head(GFP_KERNEL);
	if (!waitdemo_bh)
		return -ENOMEM;
	kthread_run(waitdemo_rt_holder, NULL, "wd_rt_holder");
	kthread_run(waitdemo_rt_waiter, NULL, "wd_rt_waiter");
	kthread_run(waitdemo_wq_waiter, NULL, "wd_wq_waiter");
	kthread_run(waitdemo_pg_holder, NULL, "wd_pg_holder");
	kthread_run(waitdemo_pg_waiter, NULL, "wd_pg_waiter");
	kthread_run(waitdemo_bh_holder, NULL, "wd_bh_holder");
	kthread_run(waitdemo_bh_waiter, NULL, "wd_bh_waiter");
	pr_info("waitdemo: rt=%px done=%px wq=%px page=%px bh=%px\n",
		&waitdemo_rt, &waitdemo_done, &waitdemo_wq, waitdemo_page, waitdemo_bh);
	return 0;
}
module_init(waitdemo_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rt_mutex, completion, wait queue, page and buffer waits for hang-analyzer testing");
