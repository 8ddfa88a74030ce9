#include "core/stats.h"

#include <algorithm>

namespace tern::core {

namespace {

std::string lower(std::string_view s) {
	std::string out(s);
	for (char& c : out)
		if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
	return out;
}

}  // namespace

void Stats::add(const std::string& metric, LabelValues labels, uint64_t n) {
	if (n == 0) return;
	counters_[metric][std::move(labels)] += n;
}

void Stats::observe(const std::string& metric, LabelValues labels, double value) {
	HistogramValue& h = histograms_[metric][std::move(labels)];
	auto bound = std::lower_bound(command_duration_buckets.begin(), command_duration_buckets.end(), value);
	if (bound != command_duration_buckets.end())
		++h.buckets[static_cast<size_t>(bound - command_duration_buckets.begin())];
	++h.count;
	h.sum += value;
}

void Stats::count_connection(std::string_view kind) { add("tern_smtpserver_connection_total", {std::string(kind)}); }

void Stats::observe_command(std::string_view kind, std::string_view cmd, int code, std::string_view ecode,
                            double seconds) {
	// A clock step backwards must not make a negative duration.
	observe("tern_smtpserver_command_duration_seconds",
	        {std::string(kind), std::string(cmd), std::to_string(code), std::string(ecode)},
	        std::max(seconds, 0.0));
}

void Stats::count_delivery(std::string_view result, std::string_view reason, uint64_t n) {
	add("tern_smtpserver_delivery_total", {std::string(result), std::string(reason)}, n);
}

void Stats::count_submission(std::string_view result, uint64_t n) {
	if (result.empty()) return;
	add("tern_smtpserver_submission_total", {std::string(result)}, n);
}

void Stats::count_error(std::string_view error) {
	std::lock_guard lock(errors_mu_);
	++errors_[{std::string(error)}];
}

Stats::CounterFamily Stats::errors() const {
	std::lock_guard lock(errors_mu_);
	return errors_;
}

void Stats::count_auth(std::string_view kind, std::string_view variant, std::string_view result) {
	// The model labels the variant with the mechanism name in lower case.
	add("tern_authentication_total", {std::string(kind), lower(variant), std::string(result)});
}

void Stats::set_sampler(const std::string& metric, LabelValues labels, Sampler read) {
	samplers_[metric][std::move(labels)] = std::move(read);
}

Stats& stats() {
	static Stats instance;
	return instance;
}

std::string_view submission_result_label(SubmissionRefusal why) {
	switch (why) {
	case SubmissionRefusal::badmessage: return "badmessage";
	case SubmissionRefusal::badfrom: return "badfrom";
	case SubmissionRefusal::badheader: return "badheader";
	case SubmissionRefusal::messagelimiterror: return "messagelimiterror";
	case SubmissionRefusal::recipientlimiterror: return "recipientlimiterror";
	case SubmissionRefusal::other: break;
	}
	return "";
}

}  // namespace tern::core
