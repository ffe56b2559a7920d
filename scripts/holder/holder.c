/*
 * dso-holder: the only program in the image of the container that keeps DSO's tmpfs secret
 * volumes mounted, and a probe that tells whether a path really is tmpfs.
 *
 *   dso-holder                 wait as PID 1 until SIGTERM, SIGINT or SIGHUP, then exit 0
 *   dso-holder check PATH...   print "PATH tmpfs|ramfs|other 0x<f_type>|error <errno>" per path;
 *                              exit 0 if all are tmpfs or ramfs, 1 if any is not, 2 on any error
 *   dso-holder version         print "dso-holder <version>"
 *
 * It is built freestanding (no libc, raw syscalls, static, no writable data) so that the image
 * is one file of about a kilobyte that DSO can `docker import` without any registry.
 * scripts/holder/build.sh compiles it for x86_64 and aarch64 and embeds both in
 * src/docker/holder-binary.ts; bump HOLDER_VERSION whenever the behaviour changes.
 */

#define HOLDER_VERSION 1

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define STDOUT 1
#define STDERR 2

#define EXIT_ALL_TMPFS 0
#define EXIT_NOT_TMPFS 1
#define EXIT_ERROR 2

#define EINTR 4
#define EAGAIN 11

#define SIGHUP 1
#define SIGINT 2
#define SIGTERM 15
#define SIG_BLOCK 0
#define KERNEL_SIGSET_BYTES 8

#define TMPFS_MAGIC 0x01021994UL
#define RAMFS_MAGIC 0x858458f6UL

/* Syscall numbers differ per arch; the signal numbers and struct statfs used below do not. */
#if defined(__x86_64__)
#define SYS_write 1
#define SYS_rt_sigprocmask 14
#define SYS_rt_sigtimedwait 128
#define SYS_statfs 137
#define SYS_exit_group 231

static long syscall4(long number, long a, long b, long c, long d) {
	register long r10 __asm__("r10") = d;
	long result;
	__asm__ volatile("syscall"
	                 : "=a"(result)
	                 : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10)
	                 : "rcx", "r11", "memory");
	return result;
}

/* The kernel starts us with argc at (%rsp); hand that address to C as its first argument. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call holder_main\n"
        "  hlt\n");

#elif defined(__aarch64__)
#define SYS_statfs 43
#define SYS_write 64
#define SYS_exit_group 94
#define SYS_rt_sigprocmask 135
#define SYS_rt_sigtimedwait 137

static long syscall4(long number, long a, long b, long c, long d) {
	register long x8 __asm__("x8") = number;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
	return x0;
}

/* C cannot read sp before the prologue moves it, so the stub passes it in x0. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  and sp, x0, #-16\n"
        "  bl holder_main\n"
        "  brk #0\n");

#else
#error "dso-holder supports only x86_64 and aarch64"
#endif

/* Only f_type is read: it is the first field, a long, on both supported arches. */
struct kernel_statfs {
	unsigned long f_type;
	unsigned long rest[14];
};

__attribute__((noreturn)) static void exit_group(int code) {
	for (;;) syscall4(SYS_exit_group, code, 0, 0, 0);
}

static unsigned long length_of(const char *text) {
	unsigned long length = 0;
	while (text[length] != '\0') length++;
	return length;
}

/* Best effort: if stdout is gone there is nobody left to tell, and the exit code still speaks. */
static void write_text(int fd, const char *text) {
	unsigned long left = length_of(text);
	while (left > 0) {
		long written = syscall4(SYS_write, fd, (long)text, (long)left, 0);
		if (written == -EINTR) continue;
		if (written <= 0) return;
		text += written;
		left -= (unsigned long)written;
	}
}

/* Digits of value in base 10 or 16, written backwards from the end of a 24-byte buffer. */
static const char *format_unsigned(unsigned long value, unsigned base, char buffer[24]) {
	char *cursor = buffer + 23;
	*cursor = '\0';
	do {
		*--cursor = "0123456789abcdef"[value % base];
		value /= base;
	} while (value != 0);
	return cursor;
}

static int usage(void) {
	write_text(STDERR, "usage: dso-holder [check PATH... | version]\n");
	return EXIT_ERROR;
}

static int check_paths(int count, char **paths) {
	int outcome = EXIT_ALL_TMPFS;
	char digits[24];
	for (int i = 0; i < count; i++) {
		struct kernel_statfs info;
		long result = syscall4(SYS_statfs, (long)paths[i], (long)&info, 0, 0);
		write_text(STDOUT, paths[i]);
		if (result < 0) {
			write_text(STDOUT, " error ");
			write_text(STDOUT, format_unsigned((unsigned long)-result, 10, digits));
			outcome = EXIT_ERROR;
		} else if (info.f_type == TMPFS_MAGIC) {
			write_text(STDOUT, " tmpfs");
		} else if (info.f_type == RAMFS_MAGIC) {
			write_text(STDOUT, " ramfs");
		} else {
			write_text(STDOUT, " other 0x");
			write_text(STDOUT, format_unsigned(info.f_type, 16, digits));
			if (outcome == EXIT_ALL_TMPFS) outcome = EXIT_NOT_TMPFS;
		}
		write_text(STDOUT, "\n");
	}
	return outcome;
}

/*
 * As PID 1 of a PID namespace, a signal left at its default disposition is dropped by the
 * kernel, so `docker stop` would wait for SIGKILL. A blocked signal is queued instead, and
 * rt_sigtimedwait takes it off the queue.
 */
static int hold_until_stopped(void) {
	unsigned long stop_signals = (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1)) | (1UL << (SIGHUP - 1));
	if (syscall4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&stop_signals, 0, KERNEL_SIGSET_BYTES) < 0) {
		write_text(STDERR, "dso-holder: cannot block stop signals\n");
		return EXIT_ERROR;
	}
	for (;;) {
		long received = syscall4(SYS_rt_sigtimedwait, (long)&stop_signals, 0, 0, KERNEL_SIGSET_BYTES);
		if (received > 0) return 0;
		if (received != -EINTR && received != -EAGAIN) {
			write_text(STDERR, "dso-holder: waiting for a stop signal failed\n");
			return EXIT_ERROR;
		}
	}
}

static int is_word(const char *text, const char *word) {
	while (*text != '\0' && *text == *word) {
		text++;
		word++;
	}
	return *text == *word;
}

/* Called from _start with the initial stack: argc, then argv[0..argc-1], then NULL. */
__attribute__((noreturn, used)) void holder_main(long *initial_stack) {
	int argc = (int)initial_stack[0];
	char **argv = (char **)(initial_stack + 1);
	int code;
	if (argc < 2) {
		code = hold_until_stopped();
	} else if (is_word(argv[1], "check")) {
		code = argc > 2 ? check_paths(argc - 2, argv + 2) : usage();
	} else if (is_word(argv[1], "version") && argc == 2) {
		write_text(STDOUT, "dso-holder " STRINGIFY(HOLDER_VERSION) "\n");
		code = 0;
	} else {
		code = usage();
	}
	exit_group(code);
}
