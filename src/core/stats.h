// Process-wide counters for the /metrics page (doc/behaviour.md "Logs, signals,
// metrics"). The lower layers (server, queue) count events here through a
// few plain functions; src/metrics, the top layer, reads them and renders
// the Prometheus text. Only the loop thread writes or reads, so nothing is
// locked — except count_error, which worker threads call too (DKIM signing
// runs there). Values that other objects already keep (open connections, queue
// size, worker backlog) are read when rendered, through samplers.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tern::core {

// Label values in the order of the metric's label names.
using LabelValues = std::vector<std::string>;

// The seed's buckets for the command duration histogram, in seconds.
inline constexpr std::array<double, 13> command_duration_buckets{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                                                 5,     10,    20,   30,   60,  120};

struct HistogramValue {
	// Per bucket (not cumulative): observations ≤ the bucket bound and above
	// the previous one; observations above the last bound only count below.
	std::array<uint64_t, command_duration_buckets.size()> buckets{};
	uint64_t count = 0;
	double sum = 0;
};

class Stats {
public:
	// kind: "smtp" or "submission".
	void count_connection(std::string_view kind);
	// One reply to a command: cmd lower-case ("ehlo", "(unknown)"), code as
	// sent, ecode the full enhanced code ("2.0.0") or "".
	void observe_command(std::string_view kind, std::string_view cmd, int code, std::string_view ecode,
	                     double seconds);
	// Incoming (port 25) delivery, per recipient. result: delivered, reject,
	// unknownuser, accounterror, delivererror; reason as analysis names it.
	void count_delivery(std::string_view result, std::string_view reason, uint64_t n = 1);
	// Submission results: ok, badmessage, badfrom, badheader,
	// messagelimiterror, recipientlimiterror, localserveerror, queueerror.
	void count_submission(std::string_view result, uint64_t n = 1);
	// Server-side errors: dkimsign, queuedsn. Safe from any thread.
	void count_error(std::string_view error);
	// kind "submission"; variant the mechanism, stored lower-case ("" when
	// none was chosen); result ok, badcreds, aborted, error.
	void count_auth(std::string_view kind, std::string_view variant, std::string_view result);

	// A value read at render time (gauges, and counters another object
	// keeps): metric name plus its label values. Replaces an earlier sampler
	// of the same series.
	using Sampler = std::function<double()>;
	void set_sampler(const std::string& metric, LabelValues labels, Sampler read);
	void clear_samplers() { samplers_.clear(); }

	// Read side, for src/metrics: metric name → series → value.
	using CounterFamily = std::map<LabelValues, uint64_t>;
	using HistogramFamily = std::map<LabelValues, HistogramValue>;
	const std::map<std::string, CounterFamily>& counters() const { return counters_; }
	const std::map<std::string, HistogramFamily>& histograms() const { return histograms_; }
	const std::map<std::string, std::map<LabelValues, Sampler>>& samplers() const { return samplers_; }
	// tern_smtpserver_errors_total, copied under its lock.
	CounterFamily errors() const;

	// Generic writers, for tests and for metrics without a helper above.
	void add(const std::string& metric, LabelValues labels, uint64_t n = 1);
	void observe(const std::string& metric, LabelValues labels, double value);

private:
	std::map<std::string, CounterFamily> counters_;
	std::map<std::string, HistogramFamily> histograms_;
	std::map<std::string, std::map<LabelValues, Sampler>> samplers_;
	mutable std::mutex errors_mu_;
	CounterFamily errors_;
};

// The daemon's one instance.
Stats& stats();

// Why a submission was refused by its checks (doc/behaviour.md §8), set by
// the check that refused it; `other` for server errors the seed does not
// count with a result of their own.
enum class SubmissionRefusal { other, badmessage, badfrom, badheader, messagelimiterror, recipientlimiterror };

// The seed's result label of tern_smtpserver_submission_total for a refusal;
// "" for `other`.
std::string_view submission_result_label(SubmissionRefusal why);

}  // namespace tern::core
