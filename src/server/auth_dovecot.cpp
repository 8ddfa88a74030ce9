// AUTH (RFC 4954) with the Dovecot backend: the client's SASL exchange is
// relayed step by step to Dovecot's auth-client socket, which checks the
// credentials. Everything around the exchange is tern's own, as with its
// database: the TLS rule, delays, failure counting and limits, the replies
// and the failed-login log line (server/auth.cpp).
#include <ev.h>

#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::server {

using smtp::error_reply;
using smtp::SmtpError;
namespace se = smtp::se;
namespace dovecot = sasl::dovecot;

namespace {

// Dovecot's mechanism list is asked for again after this long, so a
// changed auth_mechanisms shows in EHLO without restarting tern.
constexpr double mechanisms_refresh_s = 60.0;

// What EHLO offers before Dovecot was ever reached: PLAIN is in every
// Dovecot's auth_mechanisms.
constexpr std::string_view unknown_mechanisms = "PLAIN";

double timeout_s(const config::Config& cfg) { return static_cast<double>(cfg.auth.dovecot_timeout_ms) / 1000.0; }

}  // namespace

// ------------------------------------------------------------ the session

Outcome Connection::dovecot_auth_begin(const smtp::AuthArgs& a) {
	std::string mech = ascii_upper(a.mechanism);
	if (!dovecot::is_relayed(mech))
		return auth_failed(
		    error_reply(504, se::proto_param_invalid4, "mechanism " + a.mechanism + " not supported"), mech);
	relay_mechanism = mech;  // counted under its name from here on
	// The same rule as tern's own backend (RFC 4954 4): no credentials in
	// the clear where the listener requires TLS.
	if (tls_required_for_auth() && !tls)
		return auth_failed(error_reply(538, se::pol_tls_required11, "authentication requires tls"));
	relay_username_sent.clear();
	relay_messages = 0;
	relay_succeeded_user.reset();
	dovecot::AuthRequest request;
	request.mechanism = mech;
	smtp::Result<std::optional<std::string>> initial = initial_response_for(a);
	if (!initial) return auth_failed(initial.error());
	if (*initial) {
		relay_username_sent = dovecot::login_name_in(mech, relay_messages++, **initial);
		request.initial_response = std::move(**initial);
	}
	// Dovecot's disable_plaintext_auth looks at `secured`: TLS, or a client
	// on this host, where nothing crosses a network.
	request.secured = tls || remote_ip.loopback();
	request.remote_ip = remote_ip.to_string();
	request.local_ip = local_ip.to_string();
	request.remote_port = remote_port;
	request.local_port = local_port;
	dovecot_auth = std::make_shared<DovecotAuthClient>(srv.loop(), cfg->auth.dovecot_socket, timeout_s(*cfg));
	dovecot_auth->start(std::move(request), suspend([](Connection& c, DovecotAuthClient::Outcome& o) {
				    return c.dovecot_auth_outcome(std::move(o));
			    }));
	return Outcome::suspended();
}

Outcome Connection::dovecot_auth_answer(std::string data) {
	if (relay_succeeded_user) {
		// The client acknowledged the final data of a successful login
		// (RFC 4954 4: a 235 carries none, so it came as a 334).
		std::string user = std::move(*relay_succeeded_user);
		relay_succeeded_user.reset();
		return auth_succeeded(dovecot_account(user));
	}
	if (relay_username_sent.empty())
		relay_username_sent = dovecot::login_name_in(relay_mechanism, relay_messages, data);
	++relay_messages;
	dovecot_auth->answer(std::move(data), suspend([](Connection& c, DovecotAuthClient::Outcome& o) {
				     return c.dovecot_auth_outcome(std::move(o));
			     }));
	return Outcome::suspended();
}

Outcome Connection::dovecot_auth_outcome(DovecotAuthClient::Outcome o) {
	using Kind = DovecotAuthClient::Outcome::Kind;
	if (!o.mechanisms.empty()) srv.note_dovecot_mechanisms(o.mechanisms);
	enter_state(SessionState::command);
	switch (o.kind) {
	case Kind::challenge:
	case Kind::success:
		if (o.kind == Kind::success && !o.has_data)
			return auth_succeeded(dovecot_account(o.user.empty() ? relay_username_sent : o.user));
		if (o.kind == Kind::success) relay_succeeded_user = o.user.empty() ? relay_username_sent : o.user;
		auth_state.raw_next = false;
		// RFC 4954 4: "334 " then base64; an empty challenge keeps the space.
		return Outcome::sasl_challenge(base64_encode(o.data)).then(SessionState::auth_exchange);
	case Kind::failure:
		if (!o.reason.empty())
			log::event(log::Level::debug, cid, "dovecot refused the login", {{"reason", o.reason}});
		// The texts of tern's own mechanisms for bad credentials.
		return auth_failed(
		    error_reply(535, se::pol_bad_credentials8,
		                relay_mechanism.starts_with("SCRAM-") ? "bad credentials" : "bad user/pass"));
	case Kind::unsupported:
		return auth_failed(
		    error_reply(504, se::proto_param_invalid4, "mechanism " + relay_mechanism + " not supported"));
	case Kind::handshake:
	case Kind::unavailable: break;
	}
	log::event(log::Level::warn, cid, "dovecot authentication unavailable",
	           {{"socket", cfg->auth.dovecot_socket}, {"error", o.reason}});
	return auth_temporary_failure();
}

void Connection::end_dovecot_relay() {
	// Closing the connection tells Dovecot the request is abandoned.
	dovecot_auth.reset();
	relay_mechanism.clear();
	relay_username_sent.clear();
	relay_messages = 0;
	relay_succeeded_user.reset();
}

// The tern account of a Dovecot login: the account of that name, else the
// account that owns the address. A Dovecot user without a tern account
// stays logged in under a name no account has, so every MAIL FROM is
// refused (RFC 6409 8.1: the submitter sends only as itself).
std::string Connection::dovecot_account(const std::string& dovecot_user) const {
	if (cfg->accounts.count(dovecot_user)) return dovecot_user;
	std::string account = login_account(dovecot_user);
	return account.empty() ? "dovecot:" + dovecot_user : account;
}

std::string Connection::advertised_auth_mechanisms() const {
	if (cfg->auth.backend == config::Config::AuthBackend::dovecot) return srv.dovecot_advertised();
	return std::string(sasl::advertised_mechanisms);
}

// ------------------------------------------------------------ the server

std::string Server::dovecot_advertised() {
	if (dovecot_seen_at_ == 0 || ev_now(loop_) - dovecot_seen_at_ > mechanisms_refresh_s)
		refresh_dovecot_mechanisms();
	return dovecot_advertised_.empty() ? std::string(unknown_mechanisms) : dovecot_advertised_;
}

void Server::note_dovecot_mechanisms(const std::vector<std::string>& offered) {
	dovecot_advertised_ = dovecot::advertised_for(offered);
	dovecot_seen_at_ = ev_now(loop_);
	if (dovecot_advertised_.empty())
		log::warn(
		    "dovecot offers none of the mechanisms tern relays (PLAIN, LOGIN, SCRAM-SHA-1, SCRAM-SHA-256)",
		    {{"socket", cfg_->auth.dovecot_socket}});
}

// Asks Dovecot for its mechanisms in the background; one probe at a time.
void Server::refresh_dovecot_mechanisms() {
	if (cfg_->auth.backend != config::Config::AuthBackend::dovecot || dovecot_probe_) return;
	dovecot_probe_ = std::make_shared<DovecotAuthClient>(loop_, cfg_->auth.dovecot_socket, timeout_s(*cfg_));
	dovecot_probe_->probe([this](DovecotAuthClient::Outcome o) {
		if (o.kind == DovecotAuthClient::Outcome::Kind::handshake) {
			note_dovecot_mechanisms(o.mechanisms);
		} else {
			// Tried again by the next EHLO after a minute.
			dovecot_seen_at_ = ev_now(loop_);
			log::warn("dovecot auth socket unavailable",
			          {{"socket", cfg_->auth.dovecot_socket}, {"error", o.reason}});
		}
		dovecot_probe_.reset();
		// Each waiter goes through its connection's checked handle.
		auto waiters = std::move(dovecot_waiters_);
		dovecot_waiters_.clear();
		for (auto& w : waiters) w();
	});
}

}  // namespace tern::server
