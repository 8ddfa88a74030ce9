// Disk full while storing a message (RFC 3463 X.3.1, RFC 5321 4.2.2):
// data_dir on a small tmpfs that the test fills. Every way message data
// can fail to be written answers 452 4.3.1 (on the ports and to
// sendmail.tern), and delivery resumes by itself once space returns.
// Needs mount(2) (root, not in a locked-down container); without it the
// test says why and does nothing.
#include "bb.h"
#include "ternctl_run.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace {

// A tmpfs of `size` mounted on a fresh directory for the test's lifetime.
struct TmpfsMount {
	explicit TmpfsMount(const std::string& size) : dir(make_temp_dir("tern-full-")) {
		std::string options = "size=" + size + ",mode=0700";
		if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0)
			mounted = true;
		else
			why = std::string("mount -t tmpfs: ") + std::strerror(errno);
	}
	~TmpfsMount() {
		if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
		::rmdir(dir.c_str());
	}
	std::string dir;
	bool mounted = false;
	std::string why;
};

// Writes `path` until the file system is full; returns its size.
off_t fill_file_system(const std::string& path) {
	int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	std::string chunk(64 * 1024, 'f');
	off_t size = 0;
	for (;;) {
		ssize_t n = ::write(fd, chunk.data(), chunk.size());
		if (n <= 0) break;
		size += n;
	}
	::close(fd);
	return size;
}

void shrink_file(const std::string& path, off_t size) { REQUIRE(::truncate(path.c_str(), size) == 0); }

std::string body_of(size_t bytes, const std::string& token) {
	std::string line = token + " " + std::string(60, 'x') + "\r\n";
	std::string body;
	while (body.size() < bytes) body += line;
	return body;
}

// sendmail.tern to alice, as root; ternd answers over its local socket.
ProgramResult submit_locally(const TernDaemon& d, const std::string& body) {
	return run_program({reachable_program("sendmail.tern"), "-C", d.config_path(), "alice@test.example"},
	                   "Subject: local\n\n" + body);
}

size_t maildir_count(const std::string& maildir) {
	return maildir_files(maildir, "new").size() + maildir_files(maildir, "cur").size();
}

}  // namespace

TEST_CASE("disk full: message data that cannot be written gets 452 4.3.1, and delivery resumes when space returns") {
	TmpfsMount fs("12m");
	if (!fs.mounted) {
		MESSAGE("skipped, cannot mount a small file system for data_dir: " << fs.why);
		return;
	}
	const std::string data_dir = fs.dir + "/data";
	const std::string filler = fs.dir + "/filler";
	const std::string maildir = data_dir + "/accounts/alice/Maildir";
	DaemonOptions options;
	options.config_patch = R"({"data_dir": ")" + data_dir + R"("})";
	TernDaemon d(options);
	REQUIRE_RUNNING(d);

	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction first = send_mail(c, test_sender, {"alice@test.example"}, make_message("first", "fits\r\n"));
	REQUIRE(first.reply.plain() == "250 2.2.0 it is done");
	REQUIRE(maildir_count(maildir) == 1);

	SUBCASE("the temp file of DATA cannot be written") {
		fill_file_system(filler);
		Transaction t = send_mail(c, test_sender, {"alice@test.example"},
		                          make_message("full", body_of(200000, "full")));
		INFO(t.step << ": " << t.reply.raw);
		CHECK(t.reply.code == 452);
		CHECK(t.reply.ecode == "4.3.1");
		CHECK(t.reply.has_id());
		// When ternd's free-space check saw the full disk before DATA, DATA
		// itself is refused and the transaction stays open (RFC 5321
		// 4.1.1.4): end it as a client would before the next one.
		if (t.step == "DATA") REQUIRE(c.cmd("RSET").code == 250);
	}
	SUBCASE("the Maildir copy cannot be written") {
		// Room for the temp file but not for the copy as well; above the
		// reserve, so DATA itself is accepted.
		off_t full = fill_file_system(filler);
		shrink_file(filler, full - 1536 * 1024);
		// ternd's periodic free-space check may have run while the file
		// system was full; while space is low it checks again every second,
		// so after 1.5 s it has seen the room made above.
		usleep(1500 * 1000);
		Transaction t = send_mail(c, test_sender, {"alice@test.example"},
		                          make_message("big", body_of(1000 * 1024, "big")));
		INFO(t.step << ": " << t.reply.raw);
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "452 4.3.1 error processing");
		// Nothing half-written became visible.
		CHECK(maildir_count(maildir) == 1);
		fill_file_system(filler + "2");
	}
	SUBCASE("the temp file of a local submission cannot be written") {
		// Above the reserve, so the message is taken, but larger than the
		// room left.
		off_t full = fill_file_system(filler);
		shrink_file(filler, full - 1536 * 1024);
		usleep(1500 * 1000);  // as above: the free-space check has seen the room
		ProgramResult local = submit_locally(d, body_of(2500 * 1024, "local"));
		INFO(local.both());
		CHECK(local.exit_code == 75);
		CHECK(local.err.find("452 4.3.1 error writing message") != std::string::npos);
		CHECK(maildir_count(maildir) == 1);
		fill_file_system(filler + "2");
	}

	// Still full. The first try may reach the end of DATA (space may have
	// looked fine at the last check); once a write has failed, DATA itself
	// is refused (the reserve) until space returns.
	Transaction again = send_mail(c, test_sender, {"alice@test.example"}, make_message("again", "x\r\n"));
	INFO(again.step << ": " << again.reply.raw);
	CHECK(again.reply.code == 452);
	CHECK(again.reply.ecode == "4.3.1");
	// A refused DATA leaves the transaction open (RFC 5321 4.1.1.4).
	if (again.step == "DATA") REQUIRE(c.cmd("RSET").code == 250);
	Transaction refused = send_mail(c, test_sender, {"alice@test.example"}, make_message("refused", "x\r\n"));
	INFO(refused.step << ": " << refused.reply.raw);
	CHECK(refused.step == "DATA");
	CHECK(refused.reply.plain() == "452 4.3.1 insufficient storage");
	CHECK(refused.reply.has_id());
	CHECK(d.running());
	REQUIRE(c.cmd("RSET").code == 250);
	// Local submission (sendmail.tern) answers as the ports do.
	ProgramResult local = submit_locally(d, "full\n");
	INFO(local.both());
	CHECK(local.exit_code == 75);
	CHECK(local.err.find("452 4.3.1 insufficient storage") != std::string::npos);

	// Space returns: within a few seconds the next message is accepted,
	// without a restart.
	::unlink(filler.c_str());
	::unlink((filler + "2").c_str());
	std::string last;
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
	while (std::chrono::steady_clock::now() < deadline) {
		Transaction t = send_mail(c, test_sender, {"alice@test.example"},
		                          make_message("back", "space again\r\n"));
		last = t.reply.plain();
		if (t.reply.code != 452) break;
		REQUIRE(c.cmd("RSET").code == 250);
		std::this_thread::sleep_for(std::chrono::milliseconds(250));
	}
	CHECK(last == "250 2.2.0 it is done");
	CHECK(maildir_count(maildir) == 2);
	MESSAGE("disk full: refused with 452 4.3.1 while full, accepted again after: " << last);
}
