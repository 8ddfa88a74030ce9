#include "helpers/session.h"

namespace tern::testing {

SmtpClient connect_smtp(TernDaemon& daemon, const std::string& host) {
	SmtpClient client;
	client.connect(host, daemon.smtp_port());
	return client;
}

SmtpClient connect_and_ehlo(TernDaemon& daemon, const std::string& ehlo) {
	SmtpClient client;
	if (!client.connect("127.0.0.1", daemon.smtp_port())) return client;
	if (!client.greet_and_ehlo(ehlo)) {
		client.last_error = "greeting or EHLO failed";
		client.close();
	}
	return client;
}

std::string delivered_header(const std::string& path) {
	std::string text = read_file(path);
	return unfold(text.substr(0, text.find("\r\n\r\n") + 2));
}

std::string header_field(const std::string& header, const std::string& name) {
	size_t pos = 0;
	while (pos < header.size()) {
		size_t end = header.find("\r\n", pos);
		if (end == std::string::npos) end = header.size();
		std::string line = header.substr(pos, end - pos);
		if (line.size() > name.size() && line.compare(0, name.size() + 1, name + ":") == 0) {
			size_t v = name.size() + 1;
			while (v < line.size() && line[v] == ' ') v++;
			return line.substr(v);
		}
		pos = end + 2;
	}
	return "";
}

SilentSenderReply mail_from_silent_sender(TernDaemon& daemon) {
	daemon.dns().add_silent_name("silent.example");
	SilentSenderReply r{connect_and_ehlo(daemon), {}, 0};
	if (!r.client.connected()) return r;
	r.client.timeout_ms = 20000;
	int64_t start = now_ms();
	r.reply = r.client.cmd("MAIL FROM:<bob@silent.example>");
	r.ms = now_ms() - start;
	return r;
}

std::string make_message(const std::string& subject, const std::string& body, const std::string& from,
                         const std::string& to) {
	return "From: <" + from + ">\r\n" + "To: <" + to + ">\r\n" + "Subject: " + subject + "\r\n" + "Message-Id: <" +
	    subject + "." + std::to_string(now_ms()) + "@sender.example>\r\n" +
	    "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n" + "\r\n" + body;
}

std::string dot_stuff(const std::string& message) {
	std::string out;
	bool line_start = true;
	for (char c : message) {
		if (line_start && c == '.') out += '.';
		out += c;
		line_start = c == '\n';
	}
	return out;
}

Transaction send_mail(SmtpClient& client, const std::string& from, const std::vector<std::string>& rcpts,
                      const std::string& message) {
	Transaction t;
	t.step = "MAIL";
	t.reply = client.cmd("MAIL FROM:<" + from + ">");
	if (t.reply.code != 250) return t;
	for (auto& rcpt : rcpts) {
		t.step = "RCPT";
		t.reply = client.cmd("RCPT TO:<" + rcpt + ">");
		if (t.reply.code != 250) return t;
	}
	t.step = "DATA";
	t.reply = client.cmd("DATA");
	if (t.reply.code != 354) return t;
	t.step = "END";
	client.send(dot_stuff(message) + ".\r\n");
	t.reply = client.read_reply();
	return t;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
	return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace tern::testing
