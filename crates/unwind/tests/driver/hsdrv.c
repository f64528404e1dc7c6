/* Test "driver" for hangscope-unwind: real clang/lld-link x64 unwind data.
 *
 * Built at test time with
 *   clang --target=x86_64-pc-windows-msvc -c -O1 -gcodeview -g hsdrv.c
 *   lld-link /debug /entry:DriverEntry /subsystem:native /driver
 *            /nodefaultlib /base:0xfffff80012340000 /map ...
 * The test lays out a call chain's stack frames by emulating each
 * function's prolog from the disassembly, then checks the unwinder finds
 * exactly those frames. Each function exercises one kind of unwind code.
 */

/* /nodefaultlib: no CRT __chkstk. This stub has no .pdata entry, so it is
 * also the "leaf without unwind info" that is called from inside a prolog
 * (huge_frame's), before the frame allocation is done. */
__asm__(".globl __chkstk\n__chkstk:\n    ret\n");

/* The MSVC ABI marks objects that use floating point with a reference to
 * _fltused, normally defined by the CRT. */
int _fltused;

volatile int g_sink;
volatile int g_size = 72;
volatile double g_real = 1.5;

/* No stack frame, no calls: no .pdata entry at all. */
__declspec(noinline) int leaf(int x) { return x * 3 + g_sink; }

/* 2000-byte locals: UWOP_ALLOC_LARGE with a 16-bit scaled size
 * (under 4 KiB, so no __chkstk). */
__declspec(noinline) int big_frame(int x) {
    volatile char buf[2000];
    buf[x & 1023] = (char)x;
    return leaf(buf[(x + 1) & 1023]) + buf[5];
}

/* 600000-byte locals: UWOP_ALLOC_LARGE with a 32-bit size, allocated with
 * `mov eax, size; call __chkstk; sub rsp, rax`. */
__declspec(noinline) int huge_frame(int x) {
    volatile char buf[600000];
    buf[x & 0xffff] = 1;
    return big_frame(buf[(x + 1) & 0xffff]) + 1;
}

/* Dynamic alloca: RBP becomes the frame register (UWOP_SET_FPREG). */
__declspec(noinline) int fp_frame(int n) {
    volatile char *p = __builtin_alloca(n);
    p[0] = (char)n;
    return huge_frame(p[0]) + p[0];
}

/* Doubles live across a call: XMM6+ saved with UWOP_SAVE_XMM128. */
__declspec(noinline) double xmm_saves(double a, double b) {
    double x = a * 3.0, y = b * 5.0, z = a / b;
    int r = fp_frame(g_size);
    return x + y + z + r;
}

/* Eight values live across a call: every nonvolatile GPR pushed. */
__declspec(noinline) int many_saves(int a, int b, int c, int d) {
    int x1 = a * 3, x2 = b * 5, x3 = c * 7, x4 = d * 11;
    int x5 = a ^ b, x6 = c ^ d, x7 = a + d, x8 = b - c;
    int r = (int)xmm_saves(g_real, g_real + 1.0);
    return r + x1 * x2 + x3 * x4 + x5 * x6 + x7 * x8 + (x1 ^ x8) + (x2 ^ x7) + (x3 ^ x6) + (x4 ^ x5);
}

int DriverEntry(void *driver_object, void *registry_path) {
    (void)driver_object;
    (void)registry_path;
    return many_saves(g_sink, g_sink + 1, g_sink + 2, g_sink + 3) + 1;
}
