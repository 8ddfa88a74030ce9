#include "metrics/metrics.h"

#include <charconv>
#include <cmath>

namespace tern::metrics {

const std::vector<Family>& families() {
	// Help texts follow the model's where it has the metric.
	static const std::vector<Family> all = [] {
		std::vector<Family> f{
		    {"tern_authentication_total",
		     Type::counter,
		     "Authentication attempts and results. Variant is the SASL mechanism, lower case; results: ok, badcreds, "
		     "aborted, error.",
		     {"kind", "variant", "result"}},
		    {"tern_connections_open", Type::gauge, "Open SMTP connections.", {}},
		    {"tern_dnsbl_zones_unhealthy",
		     Type::gauge,
		     "DNSBL zones skipped because their last health test failed (RFC 5782 5).",
		     {}},
		    {"tern_history_records",
		     Type::gauge,
		     "Message history records (delivered and refused copies on port 25), every account.",
		     {}},
		    {"tern_junkfilter_verdicts_total",
		     Type::counter,
		     "Junk filter verdicts on incoming messages. Verdict values: ham, junk, untrained, error.",
		     {"verdict"}},
		    {"tern_maildir_scan_lag_seconds",
		     Type::gauge,
		     "Seconds since the start of the last complete Maildir scanner pass: junk marks, moves and deletions "
		     "older than this are known.",
		     {}},
		    {"tern_queue_deliveries_total",
		     Type::counter,
		     "Outbound queue delivery attempts per recipient. Results: delivered, local, failed, retried.",
		     {"result"}},
		    {"tern_queue_messages", Type::gauge, "Messages in the outbound queue.", {}},
		    {"tern_reports_stored_total",
		     Type::counter,
		     "DMARC aggregate and TLS reports kept. Kind values: dmarc, tlsrpt.",
		     {"kind"}},
		    {"tern_smtpserver_command_duration_seconds",
		     Type::histogram,
		     "SMTP server command duration and result codes in seconds.",
		     {"kind", "cmd", "code", "ecode"}},
		    {"tern_smtpserver_connection_total", Type::counter, "Incoming SMTP connections.", {"kind"}},
		    {"tern_smtpserver_delivery_total",
		     Type::counter,
		     "SMTP incoming message delivery from external source, not submission. Result values: delivered, reject, "
		     "unknownuser, accounterror, delivererror. Reason indicates why a message was rejected/accepted.",
		     {"result", "reason"}},
		    {"tern_smtpserver_errors_total",
		     Type::counter,
		     "SMTP server errors, known values: dkimsign, queuedsn.",
		     {"error"}},
		    {"tern_smtpserver_submission_total",
		     Type::counter,
		     "SMTP server incoming submission results, known values (those ending with error are server errors): ok, "
		     "badmessage, badfrom, badheader, messagelimiterror, recipientlimiterror, localserveerror, queueerror.",
		     {"result"}},
		    {"tern_worker_jobs_queued",
		     Type::gauge,
		     "Jobs submitted to the worker pool and not yet completed.",
		     {}},
		};
		return f;
	}();
	return all;
}

std::string escape_label_value(std::string_view value) {
	std::string out;
	out.reserve(value.size());
	for (char c : value) {
		switch (c) {
		case '\\': out += "\\\\"; break;
		case '"': out += "\\\""; break;
		case '\n': out += "\\n"; break;
		default: out += c;
		}
	}
	return out;
}

std::string format_value(double value) {
	if (std::isnan(value)) return "NaN";
	if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
	if (value == std::floor(value) && std::fabs(value) < 1e15) {
		char buf[32];
		auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(value));
		return std::string(buf, r.ptr);
	}
	char buf[64];
	auto r = std::to_chars(buf, buf + sizeof buf, value);
	return std::string(buf, r.ptr);
}

namespace {

// HELP text escaping of the format: backslash and newline only.
std::string escape_help(std::string_view text) {
	std::string out;
	for (char c : text) {
		if (c == '\\')
			out += "\\\\";
		else if (c == '\n')
			out += "\\n";
		else
			out += c;
	}
	return out;
}

// `{a="x",b="y"}` (with an extra pair appended when given), or "" without labels.
std::string label_set(const std::vector<std::string>& names, const core::LabelValues& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
	if (names.empty() && extra_name.empty()) return "";
	std::string out = "{";
	for (size_t i = 0; i < names.size(); i++) {
		if (i) out += ',';
		out += names[i] + "=\"" + escape_label_value(values[i]) + "\"";
	}
	if (!extra_name.empty()) {
		if (!names.empty()) out += ',';
		out += std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
	}
	return out + "}";
}

const char* type_name(Type t) {
	switch (t) {
	case Type::counter: return "counter";
	case Type::gauge: return "gauge";
	case Type::histogram: return "histogram";
	}
	return "untyped";
}

}  // namespace

std::string render(const core::Stats& stats) {
	std::string out;
	for (const Family& f : families()) {
		out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
		out += "# TYPE " + f.name + " " + type_name(f.type) + "\n";
		const size_t nlabels = f.label_names.size();
		if (f.type == Type::histogram) {
			auto it = stats.histograms().find(f.name);
			if (it == stats.histograms().end()) continue;
			for (const auto& [labels, h] : it->second) {
				if (labels.size() != nlabels) continue;
				uint64_t cumulative = 0;
				for (size_t i = 0; i < core::command_duration_buckets.size(); i++) {
					cumulative += h.buckets[i];
					out += f.name + "_bucket" +
					    label_set(f.label_names, labels, "le",
					              format_value(core::command_duration_buckets[i])) +
					    " " + std::to_string(cumulative) + "\n";
				}
				out += f.name + "_bucket" + label_set(f.label_names, labels, "le", "+Inf") + " " +
				    std::to_string(h.count) + "\n";
				out += f.name + "_sum" + label_set(f.label_names, labels) + " " + format_value(h.sum) +
				    "\n";
				out += f.name + "_count" + label_set(f.label_names, labels) + " " +
				    std::to_string(h.count) + "\n";
			}
			continue;
		}
		// Counted series and sampled series merge, sorted by label values; a
		// sampler wins over a counter of the same series.
		std::map<core::LabelValues, std::string> series;
		if (auto it = stats.counters().find(f.name); it != stats.counters().end())
			for (const auto& [labels, n] : it->second) series[labels] = std::to_string(n);
		if (f.name == "tern_smtpserver_errors_total")
			for (const auto& [labels, n] : stats.errors()) series[labels] = std::to_string(n);
		if (auto it = stats.samplers().find(f.name); it != stats.samplers().end())
			for (const auto& [labels, read] : it->second)
				series[labels] = format_value(read ? read() : 0.0);
		if (series.empty() && nlabels == 0) series[{}] = "0";
		for (const auto& [labels, value] : series) {
			if (labels.size() != nlabels) continue;
			out += f.name + label_set(f.label_names, labels) + " " + value + "\n";
		}
	}
	return out;
}

}  // namespace tern::metrics
