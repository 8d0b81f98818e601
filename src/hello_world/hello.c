/*
 * The program of the embedded hello-world image: prints a greeting naming its platform and
 * exits 0. No C library at all: `_start` makes the two system calls itself, so the static
 * binary stays tiny and runs in an image holding nothing else.
 *
 * Built by generate.py for each platform with -DPLATFORM='"linux/amd64"' (or arm64).
 */

#if defined(__x86_64__)
#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231

static long syscall3(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define SYS_WRITE 64
#define SYS_EXIT_GROUP 94

static long syscall3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#else
#error "only linux/amd64 and linux/arm64 are built"
#endif

#ifndef PLATFORM
#error "PLATFORM must name the platform, e.g. -DPLATFORM='\"linux/amd64\"'"
#endif

static const char GREETING[] =
    "Hello from ociregistry!\n"
    "This container runs docker.io/library/hello-world:latest for " PLATFORM ",\n"
    "pulled through the cache with no upstream registry at all.\n";

void _start(void)
{
    long left = sizeof GREETING - 1;
    const char *p = GREETING;
    while (left > 0) {
        long n = syscall3(SYS_WRITE, 1, (long)p, left);
        if (n <= 0) {
            syscall3(SYS_EXIT_GROUP, 1, 0, 0);
        }
        p += n;
        left -= n;
    }
    syscall3(SYS_EXIT_GROUP, 0, 0, 0);
    for (;;) {
    }
}
