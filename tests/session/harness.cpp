// The scripted wire and the harness that drives one session; see harness.h.
#include "session/harness.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "helpers/test_config.h"
#include "sasl/secrets.h"
#include "util/log.h"
#include "util/recvid.h"

namespace tern::session_test {

namespace fs = std::filesystem;

net::IoStatus ScriptedStream::read(char* buf, size_t cap, size_t& n) {
	n = 0;
	if (wire_->reset) {
		error_ = "reset";
		return net::IoStatus::error;  // as a socket reports a reset while reading
	}
	if (wire_->to_server.empty()) {
		if (!wire_->client_closed) return net::IoStatus::want_read;
		error_ = "end of script";
		return net::IoStatus::closed;
	}
	n = std::min({cap, wire_->max_read, wire_->to_server.size()});
	wire_->to_server.copy(buf, n);
	wire_->to_server.erase(0, n);
	return net::IoStatus::ok;
}

net::IoStatus ScriptedStream::write(const char* buf, size_t len, size_t& n) {
	n = 0;
	if (wire_->reset) {
		error_ = "reset";
		return net::IoStatus::closed;
	}
	if (wire_->write_room == 0) {
		++wire_->writes_refused;
		return net::IoStatus::want_write;
	}
	n = std::min({len, wire_->write_room, wire_->max_write});
	wire_->from_server.append(buf, n);
	if (wire_->write_room != std::numeric_limits<size_t>::max()) wire_->write_room -= n;
	return net::IoStatus::ok;
}

// The client's end of the wire, for its TLS session: it reads what the
// session wrote and writes what the session will read.
class SessionHarness::ClientEnd : public net::ByteStream {
public:
	explicit ClientEnd(std::shared_ptr<Wire> wire) : wire_(std::move(wire)) {}
	net::IoStatus read(char* buf, size_t cap, size_t& n) override {
		n = std::min(cap, wire_->from_server.size());
		if (n == 0) return net::IoStatus::want_read;
		wire_->from_server.copy(buf, n);
		wire_->from_server.erase(0, n);
		return net::IoStatus::ok;
	}
	net::IoStatus write(const char* buf, size_t len, size_t& n) override {
		wire_->to_server.append(buf, len);
		n = len;
		return net::IoStatus::ok;
	}
	std::string last_error() const override { return "client end"; }

private:
	std::shared_ptr<Wire> wire_;
};

struct DelayedResolver::Pending {
	ev_timer timer;  // first: the callback gets the Pending from its watcher
	DelayedResolver* resolver;
	uint64_t owner;
	mailauth::DnsAnswer answer;
	Callback cb;
};

DelayedResolver::~DelayedResolver() {
	for (auto* p : pending_) {
		ev_timer_stop(loop_, &p->timer);
		delete p;
	}
}

void DelayedResolver::query(uint64_t owner, const std::string& name, mailauth::RrType type, Callback cb) {
	auto* p = new Pending{{}, this, owner, {}, std::move(cb)};
	canned_.query(owner, name, type, [p](const mailauth::DnsAnswer& a) { p->answer = a; });
	pending_.push_back(p);
	ev_timer_init(&p->timer, &DelayedResolver::fire, delay, 0);
	ev_timer_start(loop_, &p->timer);
}

void DelayedResolver::fire(struct ev_loop*, ev_timer* w, int) {
	std::unique_ptr<Pending> p(reinterpret_cast<Pending*>(w));
	auto& list = p->resolver->pending_;
	list.erase(std::remove(list.begin(), list.end(), p.get()), list.end());
	++p->resolver->answered;
	p->cb(p->answer);
}

void DelayedResolver::cancel_owner(uint64_t owner) {
	for (auto it = pending_.begin(); it != pending_.end();) {
		if ((*it)->owner != owner) {
			++it;
			continue;
		}
		ev_timer_stop(loop_, &(*it)->timer);
		delete *it;
		it = pending_.erase(it);
	}
}

size_t count_replies(std::string_view bytes) {
	size_t n = 0, start = 0;
	for (size_t eol; (eol = bytes.find("\r\n", start)) != std::string_view::npos; start = eol + 2)
		if (eol - start >= 3 && (eol - start == 3 || bytes[start + 3] == ' ')) ++n;
	return n;
}

void SessionHarness::build_config(const HarnessOptions& o) {
	if (o.localserve) {
		cfg_ = config::Config::localserve_config(data_dir_);
		return;
	}
	// No socket is bound and DNS comes from the canned resolver: the ports
	// and the server address only have to be valid config.
	nlohmann::json config = testing::base_test_config(
	    {data_dir_, "127.0.0.1:53", "error", testing::test_listener(2525, 2587, 2465)});
	if (o.tls) config["tls"] = {{"cert_file", data_dir_ + "/cert.pem"}, {"key_file", data_dir_ + "/key.pem"}};
	if (!o.config_patch.empty()) config.merge_patch(nlohmann::json::parse(o.config_patch));
	cfg_ = config::Config::load_text(config.dump(), data_dir_ + "/tern.json", data_dir_);
}

SessionHarness::SessionHarness(HarnessOptions o) : options_(std::move(o)) {
	std::string tmpl = (fs::temp_directory_path() / "tern-session-XXXXXX").string();
	if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
	data_dir_ = tmpl;
	fs::create_directories(data_dir_ + "/tmp");
	if (options_.tls || options_.localserve) {
		std::string dir = options_.localserve ? data_dir_ + "/tls" : data_dir_;
		net::generate_self_signed(dir + "/cert.pem", dir + "/key.pem", "mx.test.example");
	}
	build_config(options_);
	log::set_level(log::Level::error);
	loop_ = ev_loop_new(EVFLAG_AUTO);
	std::unique_ptr<mailauth::Resolver> resolver;
	if (options_.localserve) {
		resolver = std::make_unique<mailauth::OfflineResolver>();
	} else {
		auto fake = std::make_unique<DelayedResolver>(loop_);
		dns_ = fake.get();
		// The test sender's domain takes mail (RFC 5321 5.1), so MAIL FROM passes.
		fake->canned().set_mx("sender.example", {{10, "mx.sender.example"}});
		fake->canned().set_records("mx.sender.example", mailauth::RrType::A, {"192.0.2.25"});
		fake->canned().set_records("sender.example", mailauth::RrType::A, {"192.0.2.25"});
		resolver = std::move(fake);
	}
	std::string key = ReceivedIdGenerator::load_or_create_key(data_dir_ + "/recvid.key");
	server_ = std::make_unique<server::Server>(loop_, cfg_, std::vector<net::ListenSocket>{}, key,
	                                           std::move(resolver));
	if (options_.tls || options_.localserve)
		server_->set_tls_context(
		    std::make_shared<const net::TlsServerContext>(cfg_->tls.cert_file, cfg_->tls.key_file));
	env_ = std::make_unique<store::Env>(cfg_->data_dir);
	server_->set_env(env_.get());
	if (options_.connect) connect();
}

SessionHarness::~SessionHarness() {
	if (connected_) server_->with_conn(handle_, [](server::Connection& c) { c.close_now("test over"); });
	// Let workers finish what the session started before the pieces go.
	client_tls_.reset();
	server_.reset();
	env_.reset();
	ev_loop_destroy(loop_);
	std::error_code ec;
	fs::remove_all(data_dir_, ec);
}

void SessionHarness::connect() {
	net::ListenSocket ls;
	ls.listener = options_.localserve ? "localserve" : "test";
	ls.service = options_.service;
	ls.address = "scripted";
	auto ip = IpAddr::parse(options_.remote_ip);
	handle_ = server_->open_connection(std::make_unique<ScriptedStream>(wire_), ls, [&](server::Connection& c) {
		if (ip) c.remote_ip = *ip;
		c.remote_port = 40000;
		if (auto local = IpAddr::parse("127.0.0.1")) c.local_ip = *local;
		c.local_port = 25;
	});
	connected_ = true;
}

void SessionHarness::reconnect(net::Service service) {
	if (connected_) server_->with_conn(handle_, [](server::Connection& c) { c.close_now("next session"); });
	client_tls_.reset();
	client_end_.reset();
	client_pending_.clear();
	received_.clear();
	wire_ = std::make_shared<Wire>();
	options_.service = service;
	connect();
}

void SessionHarness::send(std::string_view bytes) {
	if (client_tls_) {
		client_pending_.append(bytes);
		pump_client();
		return;
	}
	wire_->to_server.append(bytes);
}

void SessionHarness::close_client() { wire_->client_closed = true; }

void SessionHarness::start_client_tls() {
	client_end_ = std::make_unique<ClientEnd>(wire_);
	client_ctx_ = std::make_shared<const net::TlsClientContext>();
	client_tls_ = std::make_unique<net::TlsSession>(client_ctx_, *client_end_, "mx.test.example");
}

bool SessionHarness::client_tls_done() const { return client_tls_ && client_tls_->handshake_done(); }

bool SessionHarness::session_open() {
	return with_session([](server::Connection&) {});
}

bool SessionHarness::with_session(const std::function<void(server::Connection&)>& f) {
	bool live = false;
	server_->with_conn(handle_, [&](server::Connection& c) {
		live = true;
		f(c);
	});
	return live;
}

int SessionHarness::wanted_io() {
	int wanted = -1;
	with_session([&](server::Connection& c) { wanted = c.wanted_io; });
	return wanted;
}

// The client's side of one step: TLS records both ways, or the plain bytes.
bool SessionHarness::pump_client() {
	if (!client_tls_) {
		bool moved = !wire_->from_server.empty();
		received_ += wire_->from_server;
		wire_->from_server.clear();
		return moved;
	}
	size_t before = received_.size() + wire_->to_server.size() + wire_->from_server.size();
	if (!client_tls_->handshake_done()) {
		client_tls_->handshake();
		if (!client_tls_->handshake_done())
			return received_.size() + wire_->to_server.size() + wire_->from_server.size() != before;
	}
	size_t n = 0;
	if (!client_pending_.empty() &&
	    client_tls_->write(client_pending_.data(), client_pending_.size(), n) == net::IoStatus::ok)
		client_pending_.clear();
	char buf[4096];
	while (client_tls_->read(buf, sizeof buf, n) == net::IoStatus::ok && n > 0) received_.append(buf, n);
	return received_.size() + wire_->to_server.size() + wire_->from_server.size() != before;
}

// One step of the session's side: the I/O it waits for, if the wire has it.
bool SessionHarness::pump() {
	bool progress = pump_client();
	int wanted = wanted_io();
	if (wanted < 0) return progress;
	int revents = 0;
	if ((wanted & EV_READ) && (!wire_->to_server.empty() || wire_->client_closed || wire_->reset))
		revents |= EV_READ;
	if ((wanted & EV_WRITE) && wire_->write_room > 0) revents |= EV_WRITE;
	if (revents == 0) return progress;
	server_->with_conn(handle_, [revents](server::Connection& c) { c.on_io(revents); });
	pump_client();
	return true;
}

bool run_loop_until(struct ev_loop* loop, const std::function<bool()>& pred, const std::function<bool()>& step,
                    double seconds) {
	auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
	ev_timer tick;
	ev_timer_init(
	    &tick, [](struct ev_loop*, ev_timer*, int) {}, 0.002, 0.002);
	ev_timer_start(loop, &tick);
	bool ok = false;
	for (;;) {
		while (!(ok = pred()) && step()) {
		}
		if (ok || std::chrono::steady_clock::now() >= deadline) break;
		ev_run(loop, EVRUN_ONCE);
	}
	ev_timer_stop(loop, &tick);
	return ok;
}

bool SessionHarness::run_until(const std::function<bool()>& pred, double seconds) {
	return run_loop_until(
	    loop_, pred, [this] { return pump(); }, seconds);
}

std::string SessionHarness::replies(size_t n, double seconds) {
	run_until([&] { return count_replies(received_) >= n; }, seconds);
	size_t start = 0, found = 0;
	for (size_t eol; found < n && (eol = received_.find("\r\n", start)) != std::string::npos; start = eol + 2)
		if (eol - start >= 3 && (eol - start == 3 || received_[start + 3] == ' ')) ++found;
	if (found < n) start = received_.size();
	std::string out = received_.substr(0, start);
	received_.erase(0, start);
	return out;
}

std::string SessionHarness::exchange(std::string_view line, size_t n, double seconds) {
	send(std::string(line) + "\r\n");
	return replies(n, seconds);
}

std::vector<std::string> SessionHarness::maildir_files(const std::string& account) const {
	std::vector<std::string> files;
	std::error_code ec;
	for (fs::directory_iterator it(cfg_->accounts.at(account).maildir + "/new", ec), end; !ec && it != end;
	     it.increment(ec))
		files.push_back(it->path().string());
	return files;
}

}  // namespace tern::session_test
