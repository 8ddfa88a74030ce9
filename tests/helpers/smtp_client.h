// Blocking SMTP test client for the black-box tests. Every read has a
// deadline (poll), so a hung daemon fails a test instead of hanging CI.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tern::testing {

// One SMTP reply (RFC 5321 4.2), possibly multi-line.
struct Reply {
	int code = 0;                    // 0 when no complete reply arrived (see error)
	std::vector<std::string> lines;  // every line, without CRLF
	std::string text;                // last line after "NNN " (includes the enhanced code)
	std::string ecode;               // "5.5.2", or "" when the last line has none
	std::string raw;                 // the bytes as received
	std::string error;               // "timeout", "eof", "reset", "malformed: …"; "" when fine

	// The last line with the received-id suffix " (<22 chars>)" removed, e.g.
	// "503 5.5.1 missing MAIL FROM"; "<error: timeout>" when no reply came.
	std::string plain() const;
	// text without the enhanced code and without the id suffix.
	std::string message() const;
	// Whether the last line ends with " (<22-char base64url id>)".
	bool has_id() const;
	// The id of the last line, "" when none.
	std::string id() const;
};

// Removes a trailing " (<22-char base64url>)" from s, if present.
std::string strip_received_id(const std::string& s);
// Whether s ends with " (<22-char base64url>)".
bool ends_with_received_id(const std::string& s);

class SmtpClient {
public:
	SmtpClient() = default;
	~SmtpClient();
	SmtpClient(const SmtpClient&) = delete;
	SmtpClient& operator=(const SmtpClient&) = delete;
	SmtpClient(SmtpClient&& other) noexcept;
	SmtpClient& operator=(SmtpClient&& other) noexcept;

	// host is a numeric address ("127.0.0.1" or "::1"). Returns false (and
	// sets last_error) when the connection fails within the deadline.
	bool connect(const std::string& host, int port);
	bool connected() const { return fd_ >= 0; }
	void close();
	int fd() const { return fd_; }

	// Writes all bytes; false on error (EPIPE, reset, deadline).
	bool send(const std::string& bytes);
	// Reads one complete reply (all its lines).
	Reply read_reply();
	// send(line + "\r\n") then read_reply().
	Reply cmd(const std::string& line);
	// Reads the greeting, sends EHLO name, reads the reply; true when both are 2xx.
	bool greet_and_ehlo(const std::string& name = "client.sender.example");

	// True when the peer closes (EOF or reset) within the deadline without
	// sending any further byte; extra bytes received are kept in unexpected().
	bool expect_closed();
	const std::string& unexpected() const { return unexpected_; }

	// Waits until at least one byte is readable, then returns whatever a
	// single recv() yields (plus anything already buffered). "" on timeout/EOF.
	std::string recv_once();
	// True when bytes are buffered or become readable within timeout_ms.
	bool readable_within(int timeout_ms);

	int timeout_ms = 10000;
	std::string last_error;

private:
	// Reads more bytes into buf_; returns false on EOF/error/timeout and sets err.
	bool fill(int64_t deadline_ms, std::string& err);

	int fd_ = -1;
	std::string buf_;
	std::string unexpected_;
};

// Milliseconds on a monotonic clock.
int64_t now_ms();

}  // namespace tern::testing
