// The Debian package: tests/deb-check.sh builds it with `make deb` in a
// temporary folder and checks it (control data, files, lintian, the unit
// with systemd-analyze), then, as root, installs and purges it in an
// overlay container over this machine's / (never on this machine itself).
#include "bb.h"

TEST_CASE("package: make deb builds a lintian-clean package with the unit, conffile, binaries and man pages") {
	// A full build of the daemon with Debian's flags: allow it time on a busy machine.
	RunResult r = run_command({"/bin/sh", repo_root() + "/tests/deb-check.sh", repo_root()}, 40 * 60 * 1000);
	if (r.exit_code == 77) {
		MESSAGE(r.output);
		return;
	}
	INFO(r.output);
	CHECK_FALSE(r.timed_out);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "package ok"));
	// dpkg -i, the checks on the installed package and dpkg --purge ran in
	// the container, or the script said why it could not build one.
	bool installed = contains(r.output, "installed and purged tern_");
	CHECK((installed || contains(r.output, "skipped install: ")));
	if (!installed) MESSAGE(r.output);
}

TEST_CASE("package: make -n on an unconfigured tree runs nothing (no configure, no apt-get)") {
	std::string dir = make_temp_dir("tern-dry-");
	// The Makefile, the sources and what its configure steps read; install-deps.sh
	// replaced by one that leaves a mark when it runs.
	std::string script = "set -e; cd '" + dir + "'; cp '" + repo_root() + "/Makefile' '" + repo_root() +
	    "/configure.ac' '" + repo_root() +
	    "/config.mk.in' .; mkdir contrib; "
	    "(cd '" +
	    repo_root() +
	    "' && tar -cf - --exclude='*.[oda]' src/*.cpp src/*/*.cpp src/*/*.h) | tar -xf -; "
	    "printf '#!/bin/sh\\ntouch \"$(dirname \"$0\")/../DEPS-RAN\"\\n' > contrib/install-deps.sh; "
	    "chmod 755 contrib/install-deps.sh; "
	    "make -n all > all.out 2>&1; make -n check > check.out 2>&1 || true; make -n install > install.out 2>&1; "
	    "cat all.out";
	RunResult r = run_command({"/bin/sh", "-c", script}, 60000);
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "contrib/install-deps.sh\n"));  // printed, not run
	CHECK(contains(r.output, "./configure CXXFLAGS="));
	CHECK_FALSE(file_exists(dir + "/DEPS-RAN"));
	CHECK_FALSE(file_exists(dir + "/configure"));
	CHECK_FALSE(file_exists(dir + "/config.mk"));
	remove_tree(dir);
}
