/*
 * dso-holder: the only program in the image of the container that keeps DSO's tmpfs secret
 * volumes mounted, a probe that tells whether a path really is tmpfs, the tool that swaps new
 * secret files into a volume atomically, and the entrypoint wrapper of application containers.
 *
 *   dso-holder                 wait as PID 1 until SIGTERM, SIGINT or SIGHUP, then exit 0
 *   dso-holder check PATH...   print "PATH tmpfs|ramfs|other 0x<f_type>|error <errno>" per path;
 *                              exit 0 if all are tmpfs or ramfs, 1 if any is not, 2 on any error
 *   dso-holder publish STAGING TARGET
 *                              move every file of the tree STAGING to the same place under TARGET
 *                              by rename (atomic replacement), `.dso-ready` last, then remove
 *                              STAGING; print "published REL" per file; exit 0 on success, 2 if it
 *                              refused or failed before changing anything, 1 if it failed part-way
 *   dso-holder await [--quiet] FILE... -- CMD [ARG...]
 *                              wait until every FILE exists, then execve CMD (searched in PATH if
 *                              it has no '/') in place of this process; 127/126 if CMD cannot run,
 *                              143/130 on SIGTERM/SIGINT while waiting, 2 on a usage error
 *   dso-holder version         print "dso-holder <version>"
 *
 * It is built freestanding (no libc, raw syscalls, static, no writable data) so that the image
 * is one file of a few kilobytes that DSO can `docker import` without any registry, and so that
 * the same file can be copied into any application image as its entrypoint wrapper.
 * scripts/holder/build.sh compiles it for x86_64 and aarch64 and embeds both in
 * src/docker/holder-binary.ts; bump HOLDER_VERSION whenever the behaviour changes.
 */

#define HOLDER_VERSION 2

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define STDOUT 1
#define STDERR 2

#define EXIT_ALL_TMPFS 0
#define EXIT_NOT_TMPFS 1
#define EXIT_ERROR 2
#define EXIT_PARTLY_PUBLISHED 1
#define EXIT_CANNOT_EXECUTE 126
#define EXIT_NOT_FOUND 127
#define EXIT_BY_SIGNAL 128

#define ENOENT 2
#define EINTR 4
#define EAGAIN 11
#define EACCES 13
#define EEXIST 17
#define ENOTDIR 20
#define ENAMETOOLONG 36

#define SIGHUP 1
#define SIGINT 2
#define SIGTERM 15
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define KERNEL_SIGSET_BYTES 8

#define AT_FDCWD -100
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
#define AT_EMPTY_PATH 0x1000
#define O_CLOEXEC 02000000
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000

#define TMPFS_MAGIC 0x01021994UL
#define RAMFS_MAGIC 0x858458f6UL

#define PATH_BYTES 4096
#define READY_MARKER ".dso-ready"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/*
 * Syscall numbers, open flags and struct stat differ per arch; the signal numbers, errno
 * values, struct statfs (f_type first) and struct linux_dirent64 used below do not.
 */
#if defined(__x86_64__)
#define SYS_write 1
#define SYS_close 3
#define SYS_lseek 8
#define SYS_rt_sigprocmask 14
#define SYS_execve 59
#define SYS_rt_sigtimedwait 128
#define SYS_statfs 137
#define SYS_getdents64 217
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_mkdirat 258
#define SYS_fchownat 260
#define SYS_newfstatat 262
#define SYS_unlinkat 263
#define SYS_fchmodat 268
#define SYS_renameat2 316
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000
#define KERNEL_STAT_BYTES 144

struct kernel_stat {
	unsigned long st_dev;
	unsigned long st_ino;
	unsigned long st_nlink;
	unsigned int st_mode;
	unsigned int st_uid;
	unsigned int st_gid;
	unsigned int unused[27];
};

static long syscall5(long number, long a, long b, long c, long d, long e) {
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	long result;
	__asm__ volatile("syscall"
	                 : "=a"(result)
	                 : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
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
#define SYS_mkdirat 34
#define SYS_unlinkat 35
#define SYS_statfs 43
#define SYS_fchmodat 53
#define SYS_fchownat 54
#define SYS_openat 56
#define SYS_close 57
#define SYS_getdents64 61
#define SYS_lseek 62
#define SYS_write 64
#define SYS_newfstatat 79
#define SYS_exit_group 94
#define SYS_rt_sigprocmask 135
#define SYS_rt_sigtimedwait 137
#define SYS_execve 221
#define SYS_renameat2 276
#define O_DIRECTORY 040000
#define O_NOFOLLOW 0100000
#define KERNEL_STAT_BYTES 128

struct kernel_stat {
	unsigned long st_dev;
	unsigned long st_ino;
	unsigned int st_mode;
	unsigned int st_nlink;
	unsigned int st_uid;
	unsigned int st_gid;
	unsigned int unused[24];
};

static long syscall5(long number, long a, long b, long c, long d, long e) {
	register long x8 __asm__("x8") = number;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
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

/* Only the head of the kernel's struct stat is read, but the kernel writes all of it. */
_Static_assert(sizeof(struct kernel_stat) == KERNEL_STAT_BYTES, "struct kernel_stat must match the kernel's");

/* Only f_type is read: it is the first field, a long, on both supported arches. */
struct kernel_statfs {
	unsigned long f_type;
	unsigned long rest[14];
};

struct kernel_dirent64 {
	unsigned long d_ino;
	long d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

struct kernel_timespec {
	long tv_sec;
	long tv_nsec;
};

static long syscall3(long number, long a, long b, long c) {
	return syscall5(number, a, b, c, 0, 0);
}

__attribute__((noreturn)) static void exit_group(int code) {
	for (;;) syscall3(SYS_exit_group, code, 0, 0);
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
		long written = syscall3(SYS_write, fd, (long)text, (long)left);
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

static void write_errno(int fd, long error) {
	char digits[24];
	write_text(fd, ": errno ");
	write_text(fd, format_unsigned((unsigned long)error, 10, digits));
	write_text(fd, "\n");
}

static int is_word(const char *text, const char *word) {
	while (*text != '\0' && *text == *word) {
		text++;
		word++;
	}
	return *text == *word;
}

static int usage(void) {
	write_text(STDERR,
	           "usage: dso-holder [check PATH... | publish STAGING TARGET |\n"
	           "                   await [--quiet] FILE... -- CMD [ARG...] | version]\n");
	return EXIT_ERROR;
}

static int check_paths(int count, char **paths) {
	int outcome = EXIT_ALL_TMPFS;
	char digits[24];
	for (int i = 0; i < count; i++) {
		struct kernel_statfs info;
		long result = syscall3(SYS_statfs, (long)paths[i], (long)&info, 0);
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
	if (syscall5(SYS_rt_sigprocmask, SIG_BLOCK, (long)&stop_signals, 0, KERNEL_SIGSET_BYTES, 0) < 0) {
		write_text(STDERR, "dso-holder: cannot block stop signals\n");
		return EXIT_ERROR;
	}
	for (;;) {
		long received = syscall5(SYS_rt_sigtimedwait, (long)&stop_signals, 0, 0, KERNEL_SIGSET_BYTES, 0);
		if (received > 0) return 0;
		if (received != -EINTR && received != -EAGAIN) {
			write_text(STDERR, "dso-holder: waiting for a stop signal failed\n");
			return EXIT_ERROR;
		}
	}
}

/* ---- publish ---------------------------------------------------------------------------- */

/*
 * Why this is safe for readers: rename(2) replaces the name TARGET/x in one step, so an open()
 * of TARGET/x gets either the old inode (whose content nobody changes) or the new one (complete
 * before the rename, because putArchive finished writing it into STAGING). That needs STAGING
 * on the same filesystem as TARGET, which the first pass checks along with everything else
 * that could make a rename fail or land outside TARGET: the second pass then only mkdirs and
 * renames, so a refusal leaves TARGET untouched.
 *
 * Below STAGING and TARGET every lookup is relative to a directory fd opened with O_NOFOLLOW,
 * and every stat uses AT_SYMLINK_NOFOLLOW, so no symlink inside either tree is ever followed.
 */

struct publish {
	char rel[PATH_BYTES];        /* the entry being handled, relative to STAGING, for messages */
	unsigned long staging_dev;   /* STAGING's identity: no directory under TARGET may be it */
	unsigned long staging_ino;
	unsigned long target_dev;    /* TARGET's identity: no directory of STAGING may be it */
	unsigned long target_ino;
	int changed;                 /* anything under TARGET changed: a failure is then partial */
};

enum pass { VALIDATE, PUBLISH };

static void report(const char *what, const char *where, long error) {
	write_text(STDERR, "dso-holder publish: ");
	write_text(STDERR, what);
	write_text(STDERR, where);
	if (error != 0) write_errno(STDERR, error);
	else write_text(STDERR, "\n");
}

static int publish_failure(struct publish *p, const char *what, long error) {
	report(what, p->rel[0] != '\0' ? p->rel : ".", error);
	return p->changed ? EXIT_PARTLY_PUBLISHED : EXIT_ERROR;
}

static long stat_at(int dir, const char *name, struct kernel_stat *info) {
	int flags = name[0] == '\0' ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW;
	return syscall5(SYS_newfstatat, dir, (long)name, (long)info, flags, 0);
}

static long open_directory(int dir, const char *name) {
	return syscall5(SYS_openat, dir, (long)name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0, 0);
}

static int is_kind(const struct kernel_stat *info, unsigned kind) {
	return (info->st_mode & S_IFMT) == kind;
}

/* Absolute, and no ".." component, which would let a path climb out of the volume. */
static int is_plain_absolute(const char *path) {
	if (path[0] != '/') return 0;
	for (const char *c = path; *c != '\0'; c++) {
		if (c[0] == '/' && c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0')) return 0;
	}
	return 1;
}

static int walk(struct publish *p, enum pass pass, int staging, int target, unsigned long rel_length);

/* Pass 1 for one entry: would it publish cleanly? target is -1 where TARGET has no such directory yet. */
static int validate_entry(struct publish *p, int staging, int target, const char *name, unsigned long rel_length) {
	struct kernel_stat source, existing;
	long result = stat_at(staging, name, &source);
	if (result < 0) return publish_failure(p, "cannot stat ", -result);
	int has_existing = 0;
	if (target >= 0) {
		result = stat_at(target, name, &existing);
		if (result < 0 && result != -ENOENT) return publish_failure(p, "cannot stat the target of ", -result);
		has_existing = result == 0;
	}
	if (is_kind(&source, S_IFREG)) {
		/* rename(2) cannot cross filesystems; it would fail with EXDEV half-way through. */
		if (source.st_dev != p->target_dev) return publish_failure(p, "refusing, not on TARGET's filesystem: ", 0);
		if (has_existing && !is_kind(&existing, S_IFREG))
			return publish_failure(p, "refusing, TARGET has a symlink, directory or special file at ", 0);
		return 0;
	}
	/* The ready marker at the top is moved by itself, last: it must be a file. */
	if (!is_kind(&source, S_IFDIR) || is_word(p->rel, READY_MARKER))
		return publish_failure(p, "refusing, not a regular file or directory: ", 0);
	if (source.st_dev == p->target_dev && source.st_ino == p->target_ino)
		return publish_failure(p, "refusing, TARGET is inside STAGING at ", 0);
	long child_target = -1;
	if (has_existing) {
		if (!is_kind(&existing, S_IFDIR))
			return publish_failure(p, "refusing, TARGET has a symlink or non-directory at ", 0);
		/* A mount point under TARGET would make the renames below it fail with EXDEV. */
		if (existing.st_dev != p->target_dev)
			return publish_failure(p, "refusing, another filesystem is mounted under TARGET at ", 0);
		if (existing.st_dev == p->staging_dev && existing.st_ino == p->staging_ino)
			return publish_failure(p, "refusing, it would move STAGING into itself: ", 0);
		child_target = open_directory(target, name);
		if (child_target < 0) return publish_failure(p, "cannot open the target of ", -child_target);
	}
	long child_staging = open_directory(staging, name);
	if (child_staging < 0) return publish_failure(p, "cannot open ", -child_staging);
	int code = walk(p, VALIDATE, (int)child_staging, (int)child_target, rel_length);
	syscall3(SYS_close, child_staging, 0, 0);
	if (child_target >= 0) syscall3(SYS_close, child_target, 0, 0);
	return code;
}

/* Pass 2 for one entry: rename a file over its old version, or mirror a directory and empty it. */
static int publish_entry(struct publish *p, int staging, int target, const char *name, unsigned long rel_length) {
	struct kernel_stat source;
	long result = stat_at(staging, name, &source);
	if (result < 0) return publish_failure(p, "cannot stat ", -result);
	if (is_kind(&source, S_IFREG)) {
		result = syscall5(SYS_renameat2, staging, (long)name, target, (long)name, 0);
		if (result < 0) return publish_failure(p, "cannot rename ", -result);
		p->changed = 1;
		write_text(STDOUT, "published ");
		write_text(STDOUT, p->rel);
		write_text(STDOUT, "\n");
		return 0;
	}
	if (!is_kind(&source, S_IFDIR)) return publish_failure(p, "changed while publishing: ", 0);
	/* Created private, then given its owner, then its mode: never more open than in STAGING. */
	result = syscall3(SYS_mkdirat, target, (long)name, 0700);
	if (result == 0) {
		p->changed = 1;
		result = syscall5(SYS_fchownat, target, (long)name, source.st_uid, source.st_gid, AT_SYMLINK_NOFOLLOW);
		if (result < 0) return publish_failure(p, "cannot chown the target of ", -result);
		result = syscall3(SYS_fchmodat, target, (long)name, source.st_mode & 07777);
		if (result < 0) return publish_failure(p, "cannot chmod the target of ", -result);
	} else if (result != -EEXIST) { /* pass 1 saw a real directory there; O_NOFOLLOW rechecks */
		return publish_failure(p, "cannot create the target of ", -result);
	}
	long child_target = open_directory(target, name);
	if (child_target < 0) return publish_failure(p, "cannot open the target of ", -child_target);
	long child_staging = open_directory(staging, name);
	if (child_staging < 0) return publish_failure(p, "cannot open ", -child_staging);
	int code = walk(p, PUBLISH, (int)child_staging, (int)child_target, rel_length);
	syscall3(SYS_close, child_staging, 0, 0);
	syscall3(SYS_close, child_target, 0, 0);
	if (code != 0) return code;
	/* Emptied by walk, so this removes STAGING's directories deepest first. */
	result = syscall3(SYS_unlinkat, staging, (long)name, AT_REMOVEDIR);
	if (result < 0) return publish_failure(p, "cannot remove ", -result);
	return 0;
}

/*
 * One directory of STAGING, staging, against its counterpart under TARGET. In the publish pass
 * the directory is read again from the start until a read moves nothing: that keeps it correct
 * even on a filesystem whose getdents would skip entries while others are renamed away. The
 * ready marker at the top of STAGING is left for the caller to move last.
 */
static int walk(struct publish *p, enum pass pass, int staging, int target, unsigned long rel_length) {
	char buffer[2048];
	for (;;) {
		int moved = 0;
		syscall3(SYS_lseek, staging, 0, 0);
		for (;;) {
			long size = syscall3(SYS_getdents64, staging, (long)buffer, sizeof buffer);
			p->rel[rel_length] = '\0';
			if (size < 0) return publish_failure(p, "cannot read the directory ", -size);
			if (size == 0) break;
			for (long offset = 0; offset < size;) {
				struct kernel_dirent64 *entry = (struct kernel_dirent64 *)(buffer + offset);
				offset += entry->d_reclen;
				const char *name = entry->d_name;
				if (is_word(name, ".") || is_word(name, "..")) continue;
				unsigned long length = rel_length;
				if (length > 0) p->rel[length++] = '/';
				for (const char *c = name; *c != '\0'; c++) {
					if (length >= PATH_BYTES - 1) return publish_failure(p, "path too long: ", ENAMETOOLONG);
					p->rel[length++] = *c;
				}
				p->rel[length] = '\0';
				if (pass == PUBLISH && is_word(p->rel, READY_MARKER)) continue;
				int code = pass == VALIDATE ? validate_entry(p, staging, target, name, length)
				                            : publish_entry(p, staging, target, name, length);
				if (code != 0) return code;
				moved = 1;
			}
		}
		if (pass == VALIDATE || !moved) return 0;
	}
}

static int publish(const char *staging_path, const char *target_path) {
	struct publish p;
	p.rel[0] = '\0';
	p.changed = 0;
	if (!is_plain_absolute(staging_path) || !is_plain_absolute(target_path)) {
		write_text(STDERR, "dso-holder publish: STAGING and TARGET must be absolute paths without '..'\n");
		return EXIT_ERROR;
	}
	struct kernel_stat info;
	long staging = open_directory(AT_FDCWD, staging_path);
	long result = staging < 0 ? staging : stat_at((int)staging, "", &info);
	if (result < 0) {
		report("cannot open STAGING ", staging_path, -result);
		return EXIT_ERROR;
	}
	p.staging_dev = info.st_dev;
	p.staging_ino = info.st_ino;
	long target = open_directory(AT_FDCWD, target_path);
	result = target < 0 ? target : stat_at((int)target, "", &info);
	if (result < 0) {
		report("cannot open TARGET ", target_path, -result);
		return EXIT_ERROR;
	}
	p.target_dev = info.st_dev;
	p.target_ino = info.st_ino;
	if (p.staging_dev == p.target_dev && p.staging_ino == p.target_ino) {
		report("refusing, STAGING and TARGET are the same directory: ", target_path, 0);
		return EXIT_ERROR;
	}

	int code = walk(&p, VALIDATE, (int)staging, (int)target, 0);
	if (code == 0) code = walk(&p, PUBLISH, (int)staging, (int)target, 0);
	if (code != 0) return code;

	/* Last, so that an application that waits for the marker finds every other file in place. */
	result = syscall5(SYS_renameat2, staging, (long)READY_MARKER, target, (long)READY_MARKER, 0);
	if (result == 0) {
		write_text(STDOUT, "published " READY_MARKER "\n");
	} else if (result != -ENOENT) {
		report("cannot rename ", READY_MARKER, -result);
		return p.changed ? EXIT_PARTLY_PUBLISHED : EXIT_ERROR;
	}
	result = syscall3(SYS_unlinkat, AT_FDCWD, (long)staging_path, AT_REMOVEDIR);
	if (result < 0) {
		report("published, but cannot remove STAGING ", staging_path, -result);
		return EXIT_PARTLY_PUBLISHED;
	}
	return 0;
}

/* ---- await ------------------------------------------------------------------------------ */

/* The first FILE that does not exist yet, or 0 when all do (symlinks followed, like stat(1)). */
static const char *first_missing(char **files, int count) {
	struct kernel_stat info;
	for (int i = 0; i < count; i++) {
		if (syscall5(SYS_newfstatat, AT_FDCWD, (long)files[i], (long)&info, 0, 0) < 0) return files[i];
	}
	return 0;
}

/*
 * Waits in 100 ms steps, each one a rt_sigtimedwait on the blocked stop signals: as PID 1 a
 * signal without a handler is dropped, and a blocked one is queued, so this both paces the
 * polling and notices `docker stop`. Returns 0 once every file exists, else the exit code.
 */
static int wait_for_files(char **files, int count, int quiet) {
	unsigned long stop_signals = (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1));
	unsigned long steps = 0;
	for (const char *missing; (missing = first_missing(files, count)) != 0; steps++) {
		if (!quiet && steps % 300 == 0) {
			write_text(STDERR, "dso: waiting for secrets (");
			write_text(STDERR, missing);
			write_text(STDERR, "); they are restored by `docker dso up` or the DSO agent\n");
		}
		struct kernel_timespec step = {0, 100000000};
		long received = syscall5(SYS_rt_sigtimedwait, (long)&stop_signals, 0, (long)&step, KERNEL_SIGSET_BYTES, 0);
		if (received > 0) return EXIT_BY_SIGNAL + (int)received;
		if (received != -EAGAIN && received != -EINTR) {
			write_text(STDERR, "dso: waiting for secrets failed");
			write_errno(STDERR, -received);
			return EXIT_ERROR;
		}
	}
	return 0;
}

/* As execvp does: each PATH entry in turn; an empty entry is the current directory. */
static long execute(char *const *args, char **envp) {
	const char *command = args[0];
	if (command[0] == '\0') return -ENOENT;
	for (const char *c = command; *c != '\0'; c++) {
		if (*c == '/') return syscall3(SYS_execve, (long)command, (long)args, (long)envp);
	}
	const char *search = DEFAULT_PATH;
	for (char **e = envp; *e != 0; e++) {
		const char *v = *e;
		if (v[0] == 'P' && v[1] == 'A' && v[2] == 'T' && v[3] == 'H' && v[4] == '=') search = v + 5;
	}
	unsigned long command_length = length_of(command);
	long last = -ENOENT;
	int denied = 0;
	for (;;) {
		const char *end = search;
		while (*end != '\0' && *end != ':') end++;
		unsigned long directory_length = (unsigned long)(end - search);
		char candidate[PATH_BYTES];
		if (directory_length + 1 + command_length < PATH_BYTES) {
			unsigned long length = 0;
			for (const char *c = search; c < end; c++) candidate[length++] = *c;
			if (length > 0) candidate[length++] = '/';
			for (unsigned long i = 0; i <= command_length; i++) candidate[length++] = command[i];
			last = syscall3(SYS_execve, (long)candidate, (long)args, (long)envp);
		} else {
			last = -ENAMETOOLONG;
		}
		/* Not here (ENOENT, ENOTDIR, ENAMETOOLONG) or not allowed (EACCES): try the next entry. */
		if (last == -EACCES) denied = 1;
		else if (last != -ENOENT && last != -ENOTDIR && last != -ENAMETOOLONG) return last;
		if (*end == '\0') break;
		search = end + 1;
	}
	return denied ? -EACCES : last;
}

static int await_then_exec(int argc, char **argv, char **envp) {
	int quiet = argc > 0 && is_word(argv[0], "--quiet");
	int first_file = quiet;
	int separator = first_file;
	while (separator < argc && !is_word(argv[separator], "--")) separator++;
	if (separator + 1 >= argc) return usage();

	unsigned long stop_signals = (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1));
	unsigned long inherited_mask;
	if (syscall5(SYS_rt_sigprocmask, SIG_BLOCK, (long)&stop_signals, (long)&inherited_mask, KERNEL_SIGSET_BYTES, 0) < 0) {
		write_text(STDERR, "dso: cannot block stop signals\n");
		return EXIT_ERROR;
	}
	int code = wait_for_files(argv + first_file, separator - first_file, quiet);
	if (code != 0) return code;
	/* The signal mask survives execve: the application must get its signals as without us. */
	syscall5(SYS_rt_sigprocmask, SIG_SETMASK, (long)&inherited_mask, 0, KERNEL_SIGSET_BYTES, 0);

	/* argv is NULL-terminated, so CMD's own argv is simply the tail after "--". */
	long error = -execute(argv + separator + 1, envp);
	write_text(STDERR, "dso: cannot run ");
	write_text(STDERR, argv[separator + 1]);
	write_errno(STDERR, error);
	/* As shells do: 127 when there is no such program, 126 when it is there but cannot run. */
	return error == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
}

/*
 * Called from _start with the initial stack: argc, argv[0..argc-1], NULL, then the
 * environment envp[...], NULL.
 */
__attribute__((noreturn, used)) void holder_main(long *initial_stack) {
	int argc = (int)initial_stack[0];
	char **argv = (char **)(initial_stack + 1);
	char **envp = argv + argc + 1;
	int code;
	if (argc < 2) {
		code = hold_until_stopped();
	} else if (is_word(argv[1], "check")) {
		code = argc > 2 ? check_paths(argc - 2, argv + 2) : usage();
	} else if (is_word(argv[1], "publish")) {
		code = argc == 4 ? publish(argv[2], argv[3]) : usage();
	} else if (is_word(argv[1], "await")) {
		code = await_then_exec(argc - 2, argv + 2, envp);
	} else if (is_word(argv[1], "version") && argc == 2) {
		write_text(STDOUT, "dso-holder " STRINGIFY(HOLDER_VERSION) "\n");
		code = 0;
	} else {
		code = usage();
	}
	exit_group(code);
}
