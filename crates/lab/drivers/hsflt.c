/* hsflt.sys: the lab's real driver, a toy anti-virus file system filter.
 *
 * hangscope-lab compiles it at test time with Debian's clang and lld-link
 * (target x86_64-pc-windows-msvc), so its .pdata/.xdata, its imports from
 * ntoskrnl.exe and its PDB are exactly what a Microsoft-ABI toolchain
 * writes. The lab loads it into an image (sections, relocations, bound
 * imports) and lays out threads blocked inside it from its own unwind data.
 *
 * Each function's shape is chosen for the unwind codes it makes:
 *   HsFltPreCreate        many nonvolatile pushes (UWOP_PUSH_NONVOL)
 *   HsFltScanFile         a 1 KiB name buffer (UWOP_ALLOC_LARGE)
 *   HsFltQueryPolicy      a variable-size buffer: RBP frame (UWOP_SET_FPREG)
 *   HsFltWaitForScanner   a small frame calling into the kernel
 *   HsFltSpin             a leaf a running thread sits in
 * Build: see crates/lab/src/driver.rs.
 */

typedef long NTSTATUS;
typedef unsigned char BOOLEAN;
typedef struct _LARGE_INTEGER { long long QuadPart; } LARGE_INTEGER;

__declspec(dllimport) NTSTATUS KeWaitForSingleObject(void *object, int wait_reason,
                                                     char wait_mode, BOOLEAN alertable,
                                                     LARGE_INTEGER *timeout);
__declspec(dllimport) BOOLEAN ExAcquireResourceExclusiveLite(void *resource, BOOLEAN wait);
__declspec(dllimport) void ExReleaseResourceLite(void *resource);
__declspec(dllimport) void *ExAllocatePoolWithTag(int pool_type, unsigned long long size,
                                                  unsigned long tag);

/* The MSVC ABI references these from code using large frames/floats. */
__asm__(".globl __chkstk\n__chkstk:\n    ret\n");
int _fltused;

volatile long g_verdict_ready;
volatile long g_busy;
volatile long g_scans;
char g_scanner_event[24];
char g_policy_lock[104];
void *volatile g_scan_buffer;

/* A running thread spins here while the scanner is busy. */
__declspec(noinline) long HsFltSpin(long rounds) {
    long n = 0;
    while (g_busy && n < rounds)
        n++;
    return n;
}

__declspec(noinline) NTSTATUS HsFltWaitForScanner(long long timeout_100ns) {
    LARGE_INTEGER t;
    t.QuadPart = -timeout_100ns;
    NTSTATUS s = KeWaitForSingleObject(g_scanner_event, 0 /* Executive */, 0, 0, &t);
    if (!g_verdict_ready)
        HsFltSpin(1000);
    return s;
}

__declspec(noinline) NTSTATUS HsFltQueryPolicy(const char *name, long name_len) {
    volatile char *copy = __builtin_alloca((unsigned long long)name_len + 16);
    for (long i = 0; i < name_len; i++)
        copy[i] = name[i];
    if (!ExAcquireResourceExclusiveLite(g_policy_lock, 1))
        return (NTSTATUS)0xC0000001L;
    NTSTATUS s = copy[0] == '\\' ? 0 : (NTSTATUS)0xC0000033L;
    ExReleaseResourceLite(g_policy_lock);
    return s + (NTSTATUS)copy[name_len - 1];
}

__declspec(noinline) NTSTATUS HsFltScanFile(const char *path, long len, long long timeout) {
    volatile char name[1024];
    long n = len < 1023 ? len : 1023;
    for (long i = 0; i < n; i++)
        name[i] = path[i];
    name[n] = 0;
    NTSTATUS s = HsFltQueryPolicy((const char *)name, n + 1);
    if (s < 0)
        return s;
    g_scans++;
    return HsFltWaitForScanner(timeout) + name[0];
}

__declspec(noinline) NTSTATUS HsFltPreCreate(void *data, void *objects, void **context,
                                             const char *path, long len) {
    long a = g_scans * 3, b = g_scans ^ len, c = len * 7, d = (long)(long long)data;
    long e = (long)(long long)objects, f = a + c, g = b - e;
    if (!g_scan_buffer)
        g_scan_buffer = ExAllocatePoolWithTag(1 /* PagedPool */, 4096, 0x74666c48 /* 'Hlft' */);
    NTSTATUS s = HsFltScanFile(path, len, 50000000);
    if (context)
        *context = g_scan_buffer;
    return s + a * b + c * d + e * f + g * (a ^ g) + (b ^ f) + (c ^ e) + (d ^ a);
}

NTSTATUS DriverEntry(void *driver_object, void *registry_path) {
    (void)registry_path;
    void *ctx = 0;
    return HsFltPreCreate(driver_object, 0, &ctx, "\\??\\C:\\Windows\\Temp", 19);
}
