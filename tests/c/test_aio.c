/*
 * test_aio - the 2006 calls aio_recv, aio_send and aio_sendfile as
 * provided by libkevent (docs/ABI.md section 4, NAIO and AIO rows, and 5.5).
 *
 * aio_recv/aio_send register a oneshot KEVENT_NAIO kevent {raw[0] = socket,
 * raw[1] = size, ptr = buffer}; aio_sendfile a KEVENT_AIO kevent {raw[0] =
 * file, raw[1] = pages per chunk, ret_data[0] = socket}.  Each returns 0
 * (queued: an event follows), 1 (done inside the call: no event follows)
 * or -1.  Sockets are an AF_UNIX stream pair (no network needed).
 */

#include "testutil.h"

#include <sys/socket.h>

static int kfd;

/* Wait for the completion of a queued transfer; returns the event. */
static int wait_done(struct ukevent *e, const char *what)
{
	char name[128];
	int r = k_wait(kfd, e, 1, 5000);

	snprintf(name, sizeof(name), "%s: WAIT gets the completion", what);
	CHECK_RET(r, 1, name);
	return r == 1;
}

static void test_recv(int s, int peer)
{
	char buf[16], buf2[8];
	struct ukevent e[1];
	int r, err;

	memset(buf, 0, sizeof(buf));
	CHECK_RET(write(peer, "hello", 5), 5, "peer writes 5 bytes");
	r = aio_recv(kfd, s, buf, 5, 0);
	err = errno;
	CHECK_RANGE(r, 0, 1, "aio_recv with data waiting returns 0 or 1");
	t_note("aio_recv with data waiting returned %d (%s)", r, r < 0 ? t_errname(err) : "-");
	if (r == 0 && wait_done(e, "aio_recv")) {
		CHECK_HEX(e[0].type, KEVENT_NAIO, "aio_recv event: type NAIO");
		CHECK_HEX(e[0].event, KEVENT_SOCKET_RECV, "aio_recv event: event RECV");
		CHECK_HEX(e[0].req_flags, KEVENT_REQ_ONESHOT, "aio_recv event: ONESHOT");
		CHECK_HEX(e[0].ret_flags, KEVENT_RET_DONE, "aio_recv event: DONE");
		CHECK_HEX(e[0].id.raw[0], (__u32)s, "aio_recv event: raw[0] = socket");
		CHECK_HEX(e[0].id.raw[1], 0, "aio_recv event: raw[1] = 0 bytes to go");
		CHECK_EQ(e[0].ret_data[1], 5, "aio_recv event: ret_data[1] = 5 bytes moved");
		CHECK(e[0].ptr == (void *)buf, "aio_recv event: ptr = buffer");
	} else if (r == 1) {
		CHECK_RET(k_wait(kfd, e, 1, 300), 0, "aio_recv done at once: no event follows");
	}
	CHECK_MEM(buf, "hello", 5, "aio_recv filled the buffer");

	/* Nothing to read yet: must be queued. */
	memset(buf2, 0, sizeof(buf2));
	CHECK_RET(aio_recv(kfd, s, buf2, 4, 0), 0, "aio_recv with no data: 0 (queued)");
	CHECK_RET(k_wait(kfd, e, 1, 200), 0, "no completion before the data");
	CHECK_RET(write(peer, "abcd", 4), 4, "peer writes 4 bytes");
	if (wait_done(e, "queued aio_recv")) {
		CHECK_EQ(e[0].ret_data[1], 4, "queued aio_recv: ret_data[1] = 4");
		CHECK_HEX(e[0].ret_flags, KEVENT_RET_DONE, "queued aio_recv: DONE");
	}
	CHECK_MEM(buf2, "abcd", 4, "queued aio_recv filled the buffer");
}

static void test_send(int s, int peer)
{
	char msg[] = "world", got[8];
	struct ukevent e[1];
	int r, err;

	r = aio_send(kfd, s, msg, 5, 0);
	err = errno;
	CHECK_RANGE(r, 0, 1, "aio_send returns 0 or 1");
	t_note("aio_send returned %d (%s)", r, r < 0 ? t_errname(err) : "-");
	if (r == 0 && wait_done(e, "aio_send")) {
		CHECK_HEX(e[0].type, KEVENT_NAIO, "aio_send event: type NAIO");
		CHECK_HEX(e[0].event, KEVENT_SOCKET_SEND, "aio_send event: event SEND");
		CHECK_EQ(e[0].ret_data[1], 5, "aio_send event: ret_data[1] = 5");
	}
	memset(got, 0, sizeof(got));
	CHECK(poll_fd(peer, POLLIN, 2000) & POLLIN, "peer has data to read");
	CHECK_RET(recv(peer, got, 5, MSG_DONTWAIT), 5, "peer reads 5 bytes");
	CHECK_MEM(got, "world", 5, "peer got what aio_send sent");
}

static int temp_file(size_t size)
{
	static const char *dirs[] = { "/tmp", "/dev/shm", "." };
	char path[64];
	unsigned i;
	int fd = -1;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; i++) {
		snprintf(path, sizeof(path), "%s/kevent-aio-XXXXXX", dirs[i]);
		fd = mkstemp(path);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0)
		return -1;
	for (i = 0; i < size; i++) {
		unsigned char c = (unsigned char)(i * 7 + 3);

		if (write(fd, &c, 1) != 1) {
			close(fd);
			return -1;
		}
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void test_sendfile(int s, int peer)
{
	enum { SIZE = 10000 };
	unsigned char *got = calloc(1, SIZE), *exp = calloc(1, SIZE);
	struct ukevent e[1];
	size_t have = 0;
	int f = temp_file(SIZE), r, i, err;

	CHECK(f >= 0, "temporary file for aio_sendfile");
	if (f < 0)
		return;
	for (i = 0; i < SIZE; i++)
		exp[i] = (unsigned char)(i * 7 + 3);

	r = aio_sendfile(kfd, f, s, 0, 0);
	err = errno;
	CHECK_RANGE(r, 0, 1, "aio_sendfile returns 0 or 1");
	t_note("aio_sendfile returned %d (%s)", r, r < 0 ? t_errname(err) : "-");
	if (r == 0 && wait_done(e, "aio_sendfile")) {
		CHECK_HEX(e[0].type, KEVENT_AIO, "aio_sendfile event: type AIO");
		CHECK_HEX(e[0].event, KEVENT_AIO_BIO, "aio_sendfile event: event AIO_BIO");
		CHECK_HEX(e[0].id.raw[0], (__u32)f, "aio_sendfile event: raw[0] = file");
		CHECK_HEX(e[0].id.raw[1], 8, "aio_sendfile event: raw[1] = 8 pages (flags 0)");
		CHECK_HEX(e[0].ret_data[0], (__u32)s, "aio_sendfile event: ret_data[0] = socket");
		CHECK_HEX(e[0].ret_flags, KEVENT_RET_DONE, "aio_sendfile event: DONE");
	}
	while (have < SIZE && poll_fd(peer, POLLIN, 2000) & POLLIN) {
		ssize_t n = read(peer, got + have, SIZE - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	CHECK_EQ(have, SIZE, "peer received the whole file");
	CHECK_MEM(got, exp, SIZE, "peer received the file's bytes");
	close(f);
	free(got);
	free(exp);
}

static void test_errors(int s)
{
	char buf[8];
	int p[2];

	close(998);
	CHECK_ERR(aio_recv(kfd, 998, buf, 4, 0), ENODEV,
		  "aio_recv on a socket fd that does not exist: -1/ENODEV");
	CHECK_ERR(aio_recv(kfd, s, buf, (size_t)1 << 33, 0), EINVAL,
		  "aio_recv with a size over 32 bits: -1/EINVAL");
	if (pipe(p) == 0) {
		CHECK_ERR(aio_recv(kfd, p[0], buf, 4, 0), EINVAL,
			  "aio_recv on a pipe (not a socket): -1/EINVAL");
		close(p[0]);
		close(p[1]);
	}
}

int main(int argc, char **argv)
{
	int sp[2];

	t_init(argc, argv, "test_aio");
	kfd = dev_open(t_dev, O_RDWR);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
		t_skip_all("no AF_UNIX socketpair");
	{
		/* A daemon that does not serve NAIO yet answers EOPNOTSUPP. */
		char probe[1];

		if (aio_recv(kfd, sp[0], probe, 1, 0) < 0 && errno == EOPNOTSUPP)
			t_skip_all("the daemon does not serve NAIO/AIO (EOPNOTSUPP)");
	}

	test_recv(sp[0], sp[1]);
	test_send(sp[0], sp[1]);
	test_sendfile(sp[0], sp[1]);
	test_errors(sp[0]);

	close(sp[0]);
	close(sp[1]);
	close(kfd);
	return t_done();
}
