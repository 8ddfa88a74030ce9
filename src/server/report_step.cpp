#include "server/report_step.h"

#include <ctime>

#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "store/reports.h"

namespace tern::server {

namespace {

// The destination (address entry of the config) a local recipient reached.
const config::Destination* destination_of(const config::Config& cfg, const Recipient& r) {
	auto rr = cfg.resolve_recipient(r.address.localpart, r.address.domain.ascii);
	if (rr.kind != config::Config::RcptKind::local || !rr.account) return nullptr;
	auto it = rr.account->destinations.find(rr.canonical);
	return it == rr.account->destinations.end() ? nullptr : &it->second;
}

}  // namespace

void keep_reports_then(Connection& c, std::shared_ptr<InboundAnalysis> an,
                       std::function<void(Connection&, bool report_kept)> next) {
	struct Item {
		std::string recipient;
		config::Destination destination;
		bool kept = false;
	};
	auto items = std::make_shared<std::vector<Item>>();
	for (const auto& r : c.tx.recipients) {
		if (!r.local) continue;
		const config::Destination* d = destination_of(*c.cfg, r);
		if (d && (d->dmarc_reports || d->tls_reports)) items->push_back({r.display, *d});
	}
	if (items->empty()) {
		next(c, false);
		return;
	}
	store::ReportFacts facts;
	facts.dmarc_pass = an->dmarc.status == mailauth::DmarcStatus::pass;
	facts.from_domain = an->from_domain;
	facts.tlsrpt_dkim_pass = store::dkim_allows_tlsrpt(an->dkim, an->from_domain);
	int64_t now = std::time(nullptr);
	c.srv.workers().submit(
	    [items, facts, cfg = c.cfg, env = c.srv.env(), path = an->path, now] {
		    for (auto& item : *items)
			    item.kept = store::store_report_if_any(env, *cfg, item.destination, facts, path, now);
	    },
	    c.suspend([items, an, next = std::move(next)](Connection& conn) {
		    bool kept = false;
		    for (const auto& item : *items) {
			    if (!item.kept) continue;
			    kept = true;
			    an->seen_recipients.insert(item.recipient);
		    }
		    next(conn, kept);
	    }));
	c.flush();
}

}  // namespace tern::server
