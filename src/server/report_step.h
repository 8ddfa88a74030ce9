// DMARC and TLS reports for report addresses on the delivery port
// (doc/behaviour.md §9, step 3), glued into the session: for an accepted
// message, the reports it carries to local recipients whose destination is
// a report address are kept on a worker (store::store_report_if_any), and
// those recipients' copies are stored flagged Seen.
#pragma once
#include <functional>
#include <memory>

#include "server/inbound.h"

namespace tern::server {

struct Connection;

// Runs `next(conn, report_kept)` once the reports (if any) are kept; at
// once when no recipient is a report address. report_kept: a report was
// kept, so the first-time-sender delay does not apply. Marks
// an->seen_recipients.
void keep_reports_then(Connection& c, std::shared_ptr<InboundAnalysis> an,
                       std::function<void(Connection&, bool report_kept)> next);

}  // namespace tern::server
