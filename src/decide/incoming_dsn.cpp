#include "decide/incoming_dsn.h"

#include "message/headers.h"
#include "message/submission.h"
#include "smtp/dsn_params.h"
#include "smtp/reply.h"

namespace tern::decide {

namespace {

const Recipient* recipient_of(const std::vector<Recipient>& recipients, const std::string& display) {
	for (const auto& rc : recipients)
		if (rc.display == display) return &rc;
	return nullptr;
}

// RFC 3461 4.1: only the failures the sender's NOTIFY asks for.
std::vector<DeliverError> notified_failures(const IncomingDsnFacts& f) {
	std::vector<DeliverError> errors;
	for (const auto& e : f.errors) {
		const Recipient* rc = recipient_of(f.recipients, e.rcpt);
		if (!rc || smtp::dsn_wanted(rc->notify, smtp::DsnEvent::failure)) errors.push_back(e);
	}
	return errors;
}

std::vector<const Recipient*> notified_successes(const IncomingDsnFacts& f) {
	std::vector<const Recipient*> delivered;
	for (const auto& rc : f.recipients) {
		bool failed = false;
		for (const auto& e : f.errors) failed = failed || e.rcpt == rc.display;
		for (const auto& q : f.queued) failed = failed || q == rc.display;
		if (!failed && smtp::dsn_wanted(rc.notify, smtp::DsnEvent::success)) delivered.push_back(&rc);
	}
	return delivered;
}

void add_failures(message::DsnMessage& dsn, const IncomingDsnFacts& f, const std::vector<DeliverError>& errors) {
	std::vector<message::IncomingFailure> failures;
	for (const auto& e : errors) {
		const Recipient* rc = recipient_of(f.recipients, e.rcpt);
		failures.push_back({rc ? rc->ascii_address() : e.rcpt, e.text, e.code >= 500});
		message::DsnRecipient r;
		r.final_recipient = e.rcpt;
		if (rc) r.original_recipient = rc->orcpt;  // RFC 3464 2.3.1
		r.action = "failed";
		r.status = smtp::enhanced_code(e.code, e.secode);
		r.last_attempt = f.now;
		dsn.recipients.push_back(std::move(r));
	}
	dsn.text_body = failures.empty() ? "" : message::incoming_failure_text(failures);
}

void add_successes(message::DsnMessage& dsn, const IncomingDsnFacts& f,
                   const std::vector<const Recipient*>& delivered) {
	for (const Recipient* rc : delivered) {
		message::DsnRecipient r;
		r.final_recipient = rc->display;
		r.original_recipient = rc->orcpt;
		r.action = "delivered";  // RFC 3464 2.3.3
		r.status = "2.0.0";
		r.last_attempt = f.now;
		dsn.recipients.push_back(std::move(r));
		dsn.text_body += message::success_dsn_text(rc->ascii_address(), false, "");
	}
}

}  // namespace

std::optional<message::DsnMessage> incoming_dsn(const IncomingDsnFacts& f) {
	std::vector<DeliverError> errors = notified_failures(f);
	std::vector<const Recipient*> delivered = notified_successes(f);
	if (errors.empty() && delivered.empty()) return std::nullopt;
	message::DsnMessage dsn;
	dsn.smtputf8 = f.smtputf8;
	// From the postmaster of the domain the (first) recipient belongs to.
	std::string first = errors.empty() ? delivered[0]->display : errors[0].rcpt;
	dsn.from = "postmaster@" + first.substr(first.rfind('@') + 1);
	dsn.to = f.mail_from;
	dsn.subject = errors.empty() ? message::subject_delivered : message::subject_incoming_failure;
	dsn.message_id = message::make_message_id(f.hostname);
	for (const auto& field : f.fields)
		if (field.lower_name == "message-id") dsn.references = field.unfolded_value();
	dsn.reporting_mta = f.hostname;
	dsn.envid = f.envid;  // RFC 3464 2.2.1
	dsn.received_from_mta = message::received_from_mta_value(f.hello, f.remote_ip_literal);
	dsn.arrival = f.now;
	dsn.date = f.now;
	dsn.tz_offset_s = message::local_utc_offset(f.now);
	add_failures(dsn, f, errors);
	add_successes(dsn, f, delivered);
	for (const auto& field : f.fields) dsn.original_headers += field.raw;
	return dsn;
}

}  // namespace tern::decide
