// A minimal SMTP server on a random loopback port that records the messages
// it is given, with configurable replies (for outbound-queue tests).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tern::testing {

struct SinkMessage {
	std::string helo;
	std::string mail_from;              // between < and >
	std::vector<std::string> rcpt_to;   // between < and >, accepted ones only
	std::string data;                   // dot-unstuffed, CRLF line ends, without the final ".\r\n"
	int64_t received_ms = 0;            // now_ms() when the final dot arrived
	// now_ms() when the 2xx reply to the data was written (a write to a
	// peer that already died can still succeed locally); 0 when not (yet).
	int64_t acked_ms = 0;
};

class SmtpSink {
public:
	// Replies, as whole lines without CRLF. Change them before the client
	// connects (they are read under a lock for each command).
	struct Replies {
		std::string greeting = "220 sink.test.example ESMTP sink";
		std::string mail = "250 2.1.0 ok";
		std::string rcpt = "250 2.1.5 ok";
		std::string data = "354 go ahead";
		std::string data_end = "250 2.0.0 queued";
		// Waits this long after the final dot before sending data_end
		// (a slow remote, for crash tests); the message is recorded after it.
		int data_end_delay_ms = 0;
		// Waits this long after QUIT before the 221 (a remote slow to say
		// goodbye: the client must not depend on it).
		int quit_delay_ms = 0;
	};

	SmtpSink();   // binds 127.0.0.1:0 and starts its thread
	~SmtpSink();
	SmtpSink(const SmtpSink&) = delete;
	SmtpSink& operator=(const SmtpSink&) = delete;

	uint16_t port() const { return port_; }
	void set_replies(const Replies& replies);
	// Serve each connection on its own thread from now on (by default one
	// session at a time), like a real server taking parallel deliveries.
	void set_concurrent(bool concurrent) { concurrent_ = concurrent; }
	std::vector<SinkMessage> messages() const;
	int connections() const { return connections_; }
	// Complete DATA sections read so far, whatever their reply (counted when
	// the final dot arrives, before any data_end_delay_ms).
	int data_received() const { return data_received_; }
	// Polls until at least n messages were received or timeout_ms passed.
	bool wait_for_messages(size_t n, int timeout_ms = 10000) const;
	void stop();

private:
	void serve();
	void session(int fd);

	int listen_fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<int> connections_{0};
	std::atomic<int> data_received_{0};
	std::atomic<bool> concurrent_{false};
	std::thread thread_;
	std::vector<std::thread> session_threads_;   // used by serve() only, joined by stop()
	mutable std::mutex mutex_;
	Replies replies_;
	std::vector<SinkMessage> messages_;
};

}  // namespace tern::testing
