// uring FILE opens FILE through io_uring under a personality registered
// before the process dropped CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its
// effective set: the open is checked under the process's own earlier
// credentials (io_uring overrides to them), not borrowed ones. Exit 0: opened.
#include <fcntl.h>
#include <liburing.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	int pers, ret;

	if (argc != 2 || io_uring_queue_init(4, &ring, 0) < 0)
		return 2;
	pers = io_uring_register_personality(&ring);
	if (pers < 0) {
		fprintf(stderr, "register personality: %s\n", strerror(-pers));
		return 2;
	}
	if (syscall(SYS_capget, &hdr, data) != 0)
		return 2;
	data[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
	if (syscall(SYS_capset, &hdr, data) != 0)
		return 2;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_openat(sqe, AT_FDCWD, argv[1], O_RDONLY, 0);
	sqe->personality = pers;
	io_uring_submit(&ring);
	if (io_uring_wait_cqe(&ring, &cqe) < 0)
		return 2;
	ret = cqe->res;
	if (ret < 0) {
		fprintf(stderr, "open: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}
