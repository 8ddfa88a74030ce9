// The abstract asynchronous DNS resolver every mail-authentication check is
// written against (doc/design.md: mailauth "via Resolver"). The daemon's
// implementation is udns on the libev loop (net/udns_resolver); unit tests
// use CannedResolver with fixed answers.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace tern::mailauth {

enum class RrType { A, AAAA, MX, TXT, PTR };

enum class DnsStatus {
	ok,         // records present
	nxdomain,   // the name does not exist (RFC 8020)
	nodata,     // the name exists, no records of this type
	temperror,  // timeout, SERVFAIL, network error: try again later
	permerror,  // malformed answer (a name no zone can hold is nxdomain)
};

struct MxRecord {
	int preference = 0;
	std::string host;  // lower case, no trailing dot; "" for the null MX "."
};

struct DnsAnswer {
	DnsStatus status = DnsStatus::temperror;
	// A/AAAA: addresses in text form; TXT: each record's strings joined;
	// PTR: names (no trailing dot).
	std::vector<std::string> records;
	std::vector<MxRecord> mx;  // MX only
	bool found() const { return status == DnsStatus::ok; }
	// "not found" in the model's sense: NXDOMAIN or no data.
	bool not_found() const { return status == DnsStatus::nxdomain || status == DnsStatus::nodata; }
};

class Resolver {
public:
	using Callback = std::function<void(const DnsAnswer&)>;
	virtual ~Resolver() = default;
	// Starts a query for `name` (no trailing dot needed). The callback runs
	// exactly once on the loop thread, unless the query is cancelled first.
	// It may run before query() returns (canned answers), so callers must not
	// rely on code after the call running first. `owner` groups queries
	// (a connection id) so they can be cancelled together.
	virtual void query(uint64_t owner, const std::string& name, RrType type, Callback cb) = 0;
	// Cancels every pending query of `owner`: their callbacks never run.
	virtual void cancel_owner(uint64_t owner) = 0;
};

// Fixed answers for tests: a (name, type) with no entry answers NXDOMAIN.
// Callbacks run synchronously inside query(). Counts queries so tests can
// check lookup limits.
class CannedResolver : public Resolver {
public:
	void set(const std::string& name, RrType type, DnsAnswer answer);
	// Convenience: records with status ok; an empty vector gives nodata.
	void set_records(const std::string& name, RrType type, std::vector<std::string> records);
	void set_mx(const std::string& name, std::vector<MxRecord> mx);
	void query(uint64_t owner, const std::string& name, RrType type, Callback cb) override;
	void cancel_owner(uint64_t) override {}
	int queries() const { return queries_; }

private:
	std::map<std::tuple<std::string, RrType>, DnsAnswer> answers_;
	int queries_ = 0;
};

}  // namespace tern::mailauth

namespace tern::mailauth {

// For localserve, which makes no DNS lookups at all: every query answers
// temperror at once.
class OfflineResolver : public Resolver {
public:
	void query(uint64_t, const std::string&, RrType, Callback cb) override { cb(DnsAnswer{}); }
	void cancel_owner(uint64_t) override {}
};

// A and AAAA together, as "LookupIPAddr": found when either has records;
// not found when both are NXDOMAIN/no data; otherwise the first error.
struct IpLookup {
	DnsStatus status = DnsStatus::temperror;
	std::vector<std::string> addresses;
};
void lookup_ip_addr(Resolver& r, uint64_t owner, const std::string& name, std::function<void(const IpLookup&)> done);

}  // namespace tern::mailauth
