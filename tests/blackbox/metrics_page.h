// Reading ternd's /metrics page from the black-box tests: one HTTP
// exchange over a raw socket, and the value of one sample line.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace tern::testing {

// One HTTP exchange over a raw socket: sends `request`, reads until the
// server closes (≤ 5 s). "" when the connection fails.
inline std::string http_exchange(int port, const std::string& request) {
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) return "";
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_port = htons(static_cast<uint16_t>(port));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
		close(fd);
		return "";
	}
	size_t off = 0;
	while (off < request.size()) {
		ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
		if (n <= 0) break;
		off += static_cast<size_t>(n);
	}
	std::string out;
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
	char buf[8192];
	while (std::chrono::steady_clock::now() < deadline) {
		pollfd p{fd, POLLIN, 0};
		if (poll(&p, 1, 200) <= 0) continue;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0) break;
		out.append(buf, static_cast<size_t>(n));
	}
	close(fd);
	return out;
}

inline std::string get_metrics(int port) {
	std::string r = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	size_t body = r.find("\r\n\r\n");
	return body == std::string::npos ? std::string() : r.substr(body + 4);
}

// The value of the sample line starting with `series` ("name{...}"), or -1.
inline double sample(const std::string& page, const std::string& series) {
	size_t pos = 0;
	while ((pos = page.find(series + " ", pos)) != std::string::npos) {
		if (pos == 0 || page[pos - 1] == '\n') {
			size_t eol = page.find('\n', pos);
			return std::stod(page.substr(pos + series.size() + 1, eol - pos - series.size() - 1));
		}
		pos += series.size();
	}
	return -1;
}

// The sample `series` once it is `wanted`, or as last seen after
// `timeout_ms`: for values that settle after what a test did (a pass of
// the scanner, a worker job still running, a login's delayed reply).
inline double sample_within(int port, const std::string& series, double wanted, int timeout_ms) {
	double seen = sample(get_metrics(port), series);
	for (int waited = 0; seen != wanted && waited < timeout_ms; waited += 50) {
		usleep(50 * 1000);
		seen = sample(get_metrics(port), series);
	}
	return seen;
}

}  // namespace tern::testing
