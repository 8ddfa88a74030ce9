#include "server/filter_metrics.h"

#include "core/stats.h"
#include "server/server.h"
#include "store/junk_counts.h"
#include "store/reports.h"

namespace tern::server {

void register_filter_metrics(Server& srv) {
	auto& stats = core::stats();
	auto& junk = store::junk_verdict_counters();
	stats.set_sampler("tern_junkfilter_verdicts_total", {"ham"},
	                  [&junk] { return static_cast<double>(junk.ham.load()); });
	stats.set_sampler("tern_junkfilter_verdicts_total", {"junk"},
	                  [&junk] { return static_cast<double>(junk.junk.load()); });
	stats.set_sampler("tern_junkfilter_verdicts_total", {"untrained"},
	                  [&junk] { return static_cast<double>(junk.untrained.load()); });
	stats.set_sampler("tern_junkfilter_verdicts_total", {"error"},
	                  [&junk] { return static_cast<double>(junk.error.load()); });
	auto& reports = store::report_counters();
	stats.set_sampler("tern_reports_stored_total", {"dmarc"},
	                  [&reports] { return static_cast<double>(reports.dmarc.load()); });
	stats.set_sampler("tern_reports_stored_total", {"tlsrpt"},
	                  [&reports] { return static_cast<double>(reports.tls.load()); });
	stats.set_sampler("tern_dnsbl_zones_unhealthy", {},
	                  [&srv] { return static_cast<double>(srv.dnsbl_health().unhealthy_count()); });
}

}  // namespace tern::server
