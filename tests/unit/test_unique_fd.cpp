// UniqueFd and TempFile (util/unique_fd.h): descriptors closed and temp
// files removed by their owners' scope, kept only when handed on.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "files.h"
#include "util/unique_fd.h"

using tern::TempFile;
using tern::UniqueFd;

namespace {

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

bool exists(const std::string& path) {
	struct stat st;
	return ::stat(path.c_str(), &st) == 0;
}

// An empty file `name` in `dir`; its path.
std::string create_file(const tern::testing::TempDir& dir, const std::string& name) {
	std::string p = dir.path + "/" + name;
	UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	REQUIRE(fd.valid());
	return p;
}

}  // namespace

TEST_CASE("UniqueFd closes its descriptor when it goes") {
	int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(raw >= 0);
	{
		UniqueFd fd(raw);
		CHECK(fd.valid());
		CHECK(fd.get() == raw);
		CHECK(fd_open(raw));
	}
	CHECK_FALSE(fd_open(raw));
}

TEST_CASE("UniqueFd: an empty one is invalid and closes nothing") {
	UniqueFd fd;
	CHECK_FALSE(fd.valid());
	CHECK_FALSE(static_cast<bool>(fd));
	CHECK(fd.get() == -1);
	CHECK(fd.close() == 0);
	UniqueFd failed(::open("/nonexistent/tern", O_RDONLY));
	CHECK_FALSE(failed.valid());
}

TEST_CASE("UniqueFd moves ownership and release gives it up") {
	int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(raw >= 0);
	UniqueFd a(raw);
	UniqueFd b(std::move(a));
	CHECK_FALSE(a.valid());
	CHECK(b.get() == raw);
	UniqueFd c;
	c = std::move(b);
	CHECK(c.get() == raw);
	CHECK(fd_open(raw));
	int taken = c.release();
	CHECK(taken == raw);
	CHECK_FALSE(c.valid());
	CHECK(fd_open(raw));  // released, not closed
	::close(taken);
}

TEST_CASE("UniqueFd: reset and move-assignment close the old descriptor") {
	int first = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	int second = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(first >= 0);
	REQUIRE(second >= 0);
	UniqueFd fd(first);
	fd.reset(second);
	CHECK_FALSE(fd_open(first));
	CHECK(fd.get() == second);
	int third = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(third >= 0);
	fd = UniqueFd(third);
	CHECK_FALSE(fd_open(second));
	CHECK(fd.close() == 0);
	CHECK_FALSE(fd.valid());
	CHECK_FALSE(fd_open(third));
}

TEST_CASE("TempFile removes its file unless committed") {
	tern::testing::TempDir dir;
	std::string dropped = create_file(dir, "dropped");
	std::string kept = create_file(dir, "kept");
	{
		TempFile guard(dropped);
		CHECK(guard.armed());
		CHECK(guard.path() == dropped);
	}
	CHECK_FALSE(exists(dropped));
	{
		TempFile guard(kept);
		CHECK(guard.commit() == kept);
		CHECK_FALSE(guard.armed());
	}
	CHECK(exists(kept));
}

TEST_CASE("TempFile removes on an exception") {
	tern::testing::TempDir dir;
	std::string path = create_file(dir, "thrown");
	try {
		TempFile guard(path);
		throw 1;
	} catch (int) {
	}
	CHECK_FALSE(exists(path));
}

TEST_CASE("TempFile: move hands the file on; remove is at once and once") {
	tern::testing::TempDir dir;
	std::string a = create_file(dir, "a");
	std::string b = create_file(dir, "b");
	TempFile first(a);
	TempFile second(std::move(first));
	CHECK_FALSE(first.armed());
	CHECK(second.path() == a);
	TempFile third(b);
	third = std::move(second);  // b goes now, a is third's
	CHECK_FALSE(exists(b));
	CHECK(exists(a));
	third.remove();
	CHECK_FALSE(exists(a));
	CHECK_FALSE(third.armed());
	third.remove();  // nothing left to do
	TempFile empty;
	CHECK_FALSE(empty.armed());
}
