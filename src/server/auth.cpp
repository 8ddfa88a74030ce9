// AUTH (RFC 4954) on submission listeners: mechanism selection, the SASL
// exchange driven by the pure state machines of src/sasl, secret lookups on
// the worker pool, and the model's failed-login handling (doc/behaviour.md
// §4 AUTH, §10).
#include <ctime>

#include "core/stats.h"
#include "sasl/mechanism.h"
#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "store/db.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::server {

using smtp::error_reply;
using smtp::SmtpError;
namespace se = smtp::se;

namespace {

// The result label of tern_authentication_total for a failed login, with
// the model's names; the client's abort is counted where it is seen.
std::string_view failure_result(int code) { return code == 535 ? "badcreds" : "error"; }

}  // namespace

Outcome Connection::cmd_auth(std::string_view args) {
	if (smtp::Status s = need_hello(); !s) return s.error();
	if (!submission())
		return error_reply(503, se::proto_bad_cmd_or_seq1, "authentication only allowed on submission ports");
	if (!username.empty()) return error_reply(503, se::proto_bad_cmd_or_seq1, "already authenticated");
	if (tx.has_mail)
		return error_reply(503, se::proto_bad_cmd_or_seq1,
		                   "authentication not allowed during mail transaction");

	// RFC 4954 4: slow down repeated failures on one connection: the 4th and
	// later attempts wait (failures - 3) × delays_ms.auth_fail first.
	double delay = auth_failures > 3
	    ? static_cast<double>(auth_failures - 3) * static_cast<double>(cfg->delays_ms.auth_fail) / 1000.0
	    : 0.0;
	++auth_failures;  // compensated on success
	auth_state.in_progress = true;
	std::string a(args);
	if (delay > 0) {
		stall_then(delay, [a](Connection& c) { c.apply(c.auth_begin(a)); });
		return Outcome::suspended();
	}
	// 334 challenges follow (auth_line), then 235 or the failure.
	return auth_begin(a);
}

Outcome Connection::auth_begin(const std::string& args) {
	smtp::Result<smtp::AuthArgs> parsed = smtp::parse_auth(args, parse_mode());
	if (!parsed) return auth_failed(parsed.error());
	const smtp::AuthArgs& a = *parsed;
	if (cfg->auth.backend == config::Config::AuthBackend::dovecot)
		return dovecot_auth_begin(a);  // server/auth_dovecot.cpp
	auto mech = sasl::make_mechanism(a.mechanism, hostname());
	if (!mech)
		return auth_failed(
		    error_reply(504, se::proto_param_invalid4, "mechanism " + a.mechanism + " not supported"),
		    a.mechanism);
	// Chosen from here on: a failure below counts under its name in
	// tern_authentication_total, as the model's does (auth_failed drops it).
	mechanism = std::move(mech);
	// doc/behaviour.md D5: with TLS required, no mechanism runs in
	// the clear (RFC 4954 4: credentials must not cross an open channel).
	if (tls_required_for_auth() && !tls)
		return auth_failed(error_reply(538, se::pol_tls_required11, "authentication requires tls"));
	smtp::Result<std::optional<std::string>> initial = initial_response_for(a);
	if (!initial) return auth_failed(initial.error());
	return auth_step(mechanism->start(std::move(*initial)));
}

// The initial response, once the mechanism is known to run: refused as a
// syntax error for one that takes none (text after its name is more than
// the command allows), else decoded (RFC 4954 4).
smtp::Result<std::optional<std::string>> Connection::initial_response_for(const smtp::AuthArgs& a) const {
	return smtp::initial_response(a, sasl::takes_initial_response(ascii_upper(a.mechanism)), parse_mode());
}

Outcome Connection::auth_line(std::string_view line) {
	std::string data;
	if (!auth_state.raw_next && line == "*") {
		// RFC 4954 4: the client cancelled the exchange.
		record_auth_failure("aborted");
		return auth_failed(error_reply(501, se::proto_other0, "authentication aborted"));
	}
	if (auth_state.raw_next) {
		data.assign(line);
	} else {
		smtp::Result<std::string> decoded = smtp::decode_auth_base64(line);
		if (!decoded) return auth_failed(decoded.error());
		data = std::move(*decoded);
	}
	// The answer is taken; the mechanism (or Dovecot) decides what follows.
	enter_state(SessionState::command);
	if (dovecot_auth) return dovecot_auth_answer(std::move(data));
	return auth_step(mechanism->next(std::move(data)));
}

Outcome Connection::auth_step(sasl::Step step) {
	switch (step.kind) {
	case sasl::Step::Kind::challenge:
		// A raw-line challenge is the SCRAM server-error message (RFC 5802
		// 7, e.g. `e=invalid-proof`): the login has failed, whatever the
		// client does next. It counts now, so that a client hanging up
		// instead of answering cannot guess without limit (§10).
		if (step.next_line_raw) record_auth_failure(failure_result(step.code));
		auth_state.raw_next = step.next_line_raw;
		// RFC 4954 4: "334 " then base64; an empty challenge keeps the space.
		return Outcome::sasl_challenge(base64_encode(step.challenge)).then(SessionState::auth_exchange);
	case sasl::Step::Kind::lookup: {
		// The login name is an email address; its account's secrets come from
		// the database on a worker, never on the loop.
		std::string account = login_account(step.username);
		if (account.empty()) return auth_step(mechanism->provide_secrets(std::nullopt));
		auth_login = account;
		auto secrets = std::make_shared<std::optional<sasl::StoredSecrets>>();
		auto lookup_failed = std::make_shared<bool>(false);
		store::Env* env = srv.env();
		srv.workers().submit(
		    [env, account, secrets, lookup_failed] {
			    if (!env) return;
			    try {
				    if (auto blob = env->password_secrets(account))
					    *secrets = sasl::StoredSecrets::parse(*blob);
			    } catch (const std::exception& e) {
				    *lookup_failed = true;
				    log::error("reading password secrets", {{"account", account}, {"error", e.what()}});
			    }
		    },
		    suspend([secrets, lookup_failed](Connection& c) -> Outcome {
			    c.enter_state(SessionState::command);
			    if (*lookup_failed) return c.auth_temporary_failure();
			    return c.auth_step(c.mechanism->provide_secrets(std::move(*secrets)));
		    }));
		return Outcome::suspended();
	}
	case sasl::Step::Kind::success: {
		std::string account = auth_login.empty() ? login_account(step.username) : auth_login;
		// Still in progress, so the failure is counted and logged once.
		if (account.empty()) return auth_failed(error_reply(535, se::pol_bad_credentials8, "bad user/pass"));
		return auth_succeeded(account);
	}
	case sasl::Step::Kind::failure: break;
	}
	return auth_failed(error_reply(step.code, step.secode, step.text));
}

Outcome Connection::auth_succeeded(const std::string& account) {
	core::stats().count_auth("submission", auth_mechanism_name(), "ok");  // tern_authentication_total
	mechanism.reset();
	end_dovecot_relay();
	auth_state.in_progress = false;
	auth_login.clear();
	username = account;
	auth_failures = 0;
	flags.slow = false;
	srv.auth_failure_limiter().reset(remote_ip, std::time(nullptr));
	log::event(log::Level::info, cid, "authenticated", {{"account", account}});
	return Outcome::reply(235, se::pol_other0, "nice");
}

// The mechanism of the login in progress: tern's own, or the one relayed
// to Dovecot; "" when none was chosen yet.
std::string Connection::auth_mechanism_name() const {
	return mechanism ? std::string(mechanism->name()) : relay_mechanism;
}

// Counts the failure of the login in progress, once: in
// tern_authentication_total (with the model's result names) and against the
// client's address.
void Connection::record_auth_failure(std::string_view result) {
	if (!auth_state.in_progress || auth_state.failure_recorded) return;
	auth_state.failure_recorded = true;
	core::stats().count_auth("submission", auth_mechanism_name(), result);
	// §10: every failed login counts against the client's address.
	srv.auth_failure_limiter().add(remote_ip, std::time(nullptr), 1);
	// The 3rd failure on a connection turns on slow responses.
	if (auth_failures >= 3) flags.slow = true;
}

Outcome Connection::auth_failed(const SmtpError& e, std::string_view mechanism_name) {
	if (auth_state.in_progress) log_auth_failure(mechanism_name, std::to_string(e.code));
	record_auth_failure(failure_result(e.code));
	auth_state.in_progress = false;
	auth_state.failure_recorded = false;
	mechanism.reset();
	end_dovecot_relay();
	auth_login.clear();
	auth_state.raw_next = false;
	// A failure in the middle of the exchange ends it.
	if (state == SessionState::auth_exchange) return Outcome(e).then(SessionState::command);
	return e;
}

// The secrets could not be read (a database failure): the client may try
// again later. RFC 4954 6: 454 4.7.0 is the temporary authentication
// failure; it says nothing about the credentials, so it counts neither
// against the connection nor against the client's address.
Outcome Connection::auth_temporary_failure() {
	core::stats().count_auth("submission", auth_mechanism_name(), "error");
	mechanism.reset();
	end_dovecot_relay();
	auth_login.clear();
	auth_state.raw_next = false;
	auth_state.in_progress = false;
	if (auth_failures > 0) --auth_failures;  // cmd_auth counted this attempt
	log::event(log::Level::info, cid, "authentication temporarily unavailable", {{"code", "454"}});
	return error_reply(454, se::pol_other0, "temporary server error");
}

// One line per failed attempt, for fail2ban: the address, the mechanism and
// the login name as sent, never the secret.
void Connection::log_auth_failure(std::string_view mechanism_name, const std::string& code) const {
	log::event(
	    log::Level::info, cid, "authentication failed",
	    {{"remote", remote_ip.to_string()},
	     {"mechanism", mechanism || !relay_mechanism.empty() ? auth_mechanism_name() : std::string(mechanism_name)},
	     {"username", mechanism ? mechanism->username_sent() : relay_username_sent},
	     {"code", code}});
}

std::string Connection::login_account(const std::string& login) const {
	size_t at = login.rfind('@');
	if (at == std::string::npos) return {};
	auto addr = smtp::parse_address(login);
	if (!addr || addr->ip) return {};
	const config::Account* acc = cfg->account_for_login(addr->localpart, addr->domain.ascii);
	return acc ? acc->name : std::string();
}

}  // namespace tern::server
