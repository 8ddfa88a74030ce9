// doctest main for the black-box tests: the process holds thousands of
// sockets (raise RLIMIT_NOFILE) and must survive writes to closed peers
// (ignore SIGPIPE).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <sys/resource.h>

int main(int argc, char** argv) {
	rlimit limit{};
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
	signal(SIGPIPE, SIG_IGN);

	doctest::Context context;
	context.applyCommandLine(argc, argv);
	return context.run();
}
