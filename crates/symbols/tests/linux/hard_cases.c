/* The hard cases of reading Linux kernel types, compiled at test time:
 * clang -target bpf gives BTF (and DWARF), gcc gives DWARF, and every
 * reading must answer alike. Layouts in the comments are x86-64's. */
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;
typedef struct { int counter; } atomic_t;
typedef struct { s64 counter; } atomic64_t;
typedef atomic64_t atomic_long_t;
struct list_head { struct list_head *next, *prev; };
struct fwd_only; /* declared, never defined */
struct later;
enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, PIDTYPE_PGID, PIDTYPE_SID, PIDTYPE_MAX };
enum big64 { BIG_SMALL = 1, BIG_HUGE = 0x123456789abcdef0ULL };
enum neg { NEG_M1 = -1, NEG_ONE = 1 };
enum uns { UNS_BIG = 0xfffffff0u };
enum { ANON_CONST_A = 5 } anon_const_var; /* an anonymous enum's constant */
struct flags { unsigned int a:1, b:3; unsigned int c:28; u8 d:2; u64 e:40; u64 f:24; _Bool g:1; enum pid_type t:3; };
struct packed_bits { unsigned char x; unsigned int y:30; unsigned int z:4; } __attribute__((packed));
struct thing {
  long pad0;
  union { unsigned int __state; int state_alias; };
  struct { int x; union { long y; struct { char z; short w; }; }; };
  struct { int inner; } named_anon;
  struct { struct { int deep; } level2; } level1;
  atomic_long_t count;
  atomic_t refs;
  struct list_head tasks;
  struct fwd_only *opaque;
  struct later *later;
  void (*callback)(int);
  const volatile int *cv;
  char comm[16];
  int matrix[2][3];
  enum pid_type type;
  enum { IN_A, IN_B } anon_enum_member;
  struct flags fl;
  struct packed_bits pb;
  struct thing *self;
  enum big64 big;
  enum neg neg;
  enum uns uns;
  unsigned long tail[]; /* flexible array: count 0 */
};
struct later { int v; };
struct later g_later;
struct page { unsigned long flags; union { struct { struct list_head lru; void *mapping; }; struct { unsigned long pp_magic; }; }; };
struct thing g_thing;
struct page g_page;
/* A typedef'd named struct (alias), a pointer typedef, a typedef'd
 * anonymous enum, and a union at the top level. */
typedef struct list_head list_head_t;
typedef enum { TD_ZERO, TD_ONE } td_enum_t;
typedef union { u32 word; u8 bytes[4]; } word_u;
struct user { list_head_t link; td_enum_t e; word_u w; atomic_t a; };
struct user g_user;
