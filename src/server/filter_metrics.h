// Samplers for the metrics of the junk filter, the kept reports and the
// DNSBL zone health (man/ternd.8 "METRICS"): the counts live where they
// happen (workers count atomically in src/store; the health cache on the
// loop) and are read when /metrics is rendered.
#pragma once

namespace tern::server {

class Server;

// tern_junkfilter_verdicts_total{verdict}, tern_reports_stored_total{kind},
// tern_dnsbl_zones_unhealthy. `srv` must outlive the samplers (ternd
// clears them before it goes).
void register_filter_metrics(Server& srv);

}  // namespace tern::server
