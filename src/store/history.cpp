// Message history tables. Layouts (integers big-endian, times with the sign
// bit flipped, so byte order is time order and every look-up is a B-tree
// range scan):
//   history:        id(be64)                                 → record
//                   "seq"                                    → last id(be64)
//                   "count"                                  → records in the table(be64)
//   history_index:  'U' account 0 unique                     → id
//                   'B' account 0 mailbox 0 id               → mark(1) unique (not expunged)
//                   'T' time id                              → ""        (every record; pruning)
//                   'R' account 0 time id                    → ""        (Rejects copies, not expunged)
//                   identity kind, account 0 value 0 time id → junk(1) from_validated(1) from_localpart
//                       only for marked (junk or not junk), non-expunged records: the only ones
//                       reputation() reads, so its scans never skip unmarked mail.
//   outgoing:       'd' account 0 reversed domain            → last send time (written by db.cpp)
// The delivery-rate counts live beside the tables, in memory
// (Env::history_rates): every writer here takes their mutex before its
// transaction and updates them after the commit, so that they always match
// the tables; they are built from the 'T' index on first use.
#include "store/history.h"

#include <db.h>

#include <algorithm>
#include <ctime>
#include <set>
#include <utility>

#include "mailauth/publicsuffix.h"
#include "store/records.h"
#include "util/ipaddr.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::store {

namespace {

constexpr uint8_t record_version = 1;

// ---- keys

// Key parts end at 0x00, so they may not hold one.
std::string key_part(std::string_view s) {
	std::string out(s);
	std::replace(out.begin(), out.end(), '\0', ' ');
	return out;
}

void append_string(std::string& out, std::string_view s) {
	uint64_t n = s.size();
	while (n >= 0x80) {
		out.push_back(static_cast<char>((n & 0x7f) | 0x80));
		n >>= 7;
	}
	out.push_back(static_cast<char>(n));
	out.append(s);
}

bool read_string(std::string_view& in, std::string& out) {
	uint64_t n = 0;
	for (int shift = 0;; shift += 7) {
		if (in.empty() || shift > 63) return false;
		auto b = static_cast<unsigned char>(in[0]);
		in.remove_prefix(1);
		n |= uint64_t{b & 0x7fu} << shift;
		if (!(b & 0x80)) break;
	}
	if (n > in.size()) return false;
	out.assign(in.substr(0, n));
	in.remove_prefix(n);
	return true;
}

// ---- range scans

// A cursor over one table with the key and value it is at, walking a key
// range.
class Scan {
public:
	// `flags` DB_READ_COMMITTED releases each page once read (long walks).
	Scan(DB* db, DB_TXN* txn, u_int32_t flags = 0) : cursor_(db, txn, flags) {}
	bool step(u_int32_t flags) { return cursor_.get(key, value, flags); }
	// Calls fn(key, value) for keys starting with `prefix`, from `from` on
	// (ascending) until fn returns false.
	template <class Fn>
	void forward(std::string_view prefix, std::string_view from, Fn&& fn) {
		key.set(from);
		for (bool ok = step(DB_SET_RANGE); ok; ok = step(DB_NEXT)) {
			if (key.view().substr(0, prefix.size()) != prefix) return;
			if (!fn(key.view(), value.view())) return;
		}
	}
	// Newest first: keys starting with `prefix` at or below `upto`.
	template <class Fn>
	void backward(std::string_view prefix, std::string_view upto, Fn&& fn) {
		key.set(upto);
		bool ok = step(DB_SET_RANGE);
		if (!ok)
			ok = step(DB_LAST);  // nothing at or after `upto`: start from the end
		else if (key.view() > upto)
			ok = step(DB_PREV);
		for (; ok; ok = step(DB_PREV)) {
			if (key.view().substr(0, prefix.size()) != prefix) return;
			if (!fn(key.view(), value.view())) return;
		}
	}
	Datum key, value;

private:
	Cursor cursor_;
};

// ---- index keys

std::string account_prefix(char kind, const std::string& account) {
	std::string k(1, kind);
	k += key_part(account);
	k.push_back('\0');
	return k;
}

std::string value_prefix(char kind, const std::string& account, std::string_view value) {
	std::string k = account_prefix(kind, account);
	k += key_part(value);
	k.push_back('\0');
	return k;
}

std::string time_id(int64_t t, uint64_t id) {
	std::string s;
	append_be64(s, time_order(t));
	append_be64(s, id);
	return s;
}

std::string id_key(uint64_t id) {
	std::string s;
	append_be64(s, id);
	return s;
}

char identity_kind(inbound::HistoryKey key) {
	using K = inbound::HistoryKey;
	switch (key) {
	case K::from_address: return 'f';
	case K::from_domain: return 'd';
	case K::from_org_domain: return 'o';
	case K::dkim_domain: return 'k';
	case K::mailfrom_address: return 'm';
	case K::mailfrom_domain: return 'n';
	case K::ehlo_domain: return 'e';
	case K::ip1: return '1';
	case K::ip2: return '2';
	case K::ip3: return '3';
	}
	return '?';
}

// The identity index entries of a record: (kind, value) pairs.
std::vector<std::pair<char, std::string>> identity_values(const HistoryRecord& r) {
	using K = inbound::HistoryKey;
	const auto& m = r.identity;
	std::vector<std::pair<char, std::string>> out;
	auto add = [&](K k, std::string v) {
		if (!v.empty()) out.emplace_back(identity_kind(k), std::move(v));
	};
	if (!m.from_domain.empty()) add(K::from_address, m.from_localpart + "@" + m.from_domain);
	add(K::from_domain, m.from_domain);
	add(K::from_org_domain, m.from_org_domain);
	for (const auto& d : m.dkim_domains) add(K::dkim_domain, d);
	if (!m.mailfrom_domain.empty()) add(K::mailfrom_address, m.mailfrom_localpart + "@" + m.mailfrom_domain);
	add(K::mailfrom_domain, m.mailfrom_domain);
	add(K::ehlo_domain, m.ehlo_domain);
	add(K::ip1, m.ip1);
	add(K::ip2, m.ip2);
	add(K::ip3, m.ip3);
	return out;
}

std::string mark_char(inbound::JunkMark mark) {
	return mark == inbound::JunkMark::junk ? "j" : mark == inbound::JunkMark::notjunk ? "n" : "-";
}

bool marked(const HistoryRecord& r) { return !r.expunged && r.junk != inbound::JunkMark::unknown; }

// Every index entry of a record, key and value.
std::vector<std::pair<std::string, std::string>> index_entries(const HistoryRecord& r) {
	std::vector<std::pair<std::string, std::string>> out;
	std::string when = time_id(r.received, r.id);
	out.emplace_back(account_prefix('U', r.account) + key_part(r.unique_name), id_key(r.id));
	out.emplace_back("T" + when, "");
	if (r.expunged) return out;
	out.emplace_back(value_prefix('B', r.account, r.mailbox) + id_key(r.id), mark_char(r.junk) + r.unique_name);
	if (r.rejected) out.emplace_back(account_prefix('R', r.account) + when, "");
	if (!marked(r)) return out;
	std::string mark;
	mark.push_back(r.junk == inbound::JunkMark::junk ? 'j' : 'n');
	mark.push_back(r.identity.from_validated ? 'v' : '-');
	mark += r.identity.from_localpart;
	for (const auto& [kind, value] : identity_values(r))
		out.emplace_back(value_prefix(kind, r.account, value) + when, mark);
	return out;
}

// Writes (add) or deletes (!add) every index entry of a record.
void index_record(const Env::Tables& t, const HistoryRecord& r, bool add) {
	for (const auto& [key, value] : index_entries(r))
		if (add)
			put(t.history_index, t.txn, key, value);
		else
			del(t.history_index, t.txn, key);
}

// Stores a changed record and changes only the index entries that differ
// (the scanner's marks, moves and expunges leave most of them as they
// are); the two records have the same id.
void rewrite_record(const Env::Tables& t, const HistoryRecord& old, const HistoryRecord& updated) {
	auto before = index_entries(old);
	auto after = index_entries(updated);
	auto find = [](const auto& entries, const std::string& key) {
		return std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == key; });
	};
	for (const auto& [key, value] : before)
		if (find(after, key) == after.end()) del(t.history_index, t.txn, key);
	for (const auto& [key, value] : after)
		if (auto it = find(before, key); it == before.end() || it->second != value)
			put(t.history_index, t.txn, key, value);
	put(t.history, t.txn, id_key(updated.id), serialize_history_record(updated));
}

// A record that does not decode (damage, a newer tern's format) reads as
// absent, logged: every reader passes it over, so that one damaged record
// can neither refuse an account's mail (its reputation, its Rejects
// copies, the delivery-rate counts) nor stop the pruning.
std::optional<HistoryRecord> load(const Env::Tables& t, uint64_t id, u_int32_t flags = 0) {
	auto blob = store::get(t.history, t.txn, id_key(id), flags);
	if (!blob) return std::nullopt;
	auto r = parse_history_record(*blob);
	if (!r) log::error("message history: record passed over", {{"id", std::to_string(id)}, {"error", "malformed"}});
	return r;
}

// ---- the record count and the delivery-rate counts

constexpr std::string_view count_key = "count";

// Keeps the "count" record in the writer's transaction. A history written
// before the count existed has none until record_count() counts it once;
// a table never written to (no "seq" yet) starts it at zero.
void adjust_record_count(const Env::Tables& t, int64_t delta, bool new_table) {
	auto v = store::get(t.history, t.txn, count_key, DB_RMW);
	if (!v && !new_table) return;
	uint64_t n = v && v->size() == 8 ? read_be64(*v, 0) : 0;
	put(t.history, t.txn, count_key, be64(n + static_cast<uint64_t>(delta)));
}

// A copy enters (1) or leaves (-1) the delivery-rate counts; expunged
// copies do not count (doc/behaviour.md §9 "Delivery rates"). Called with
// the rates' mutex held, after the commit.
void count_rates(Env::HistoryRates& rates, const HistoryRecord& r, int delta) {
	if (!rates.built || r.expunged) return;
	const auto& m = r.identity;
	rates.windows.count(r.account, {m.ip1, m.ip2, m.ip3}, r.received, r.size, delta);
}

// The counts from the tables: the copies of the last day (and the grace
// seconds before it), by the time index. The caller holds the mutex, so no
// writer is inside a transaction and reading committed pages is exact.
void build_rates(Env& env, Env::HistoryRates& rates, int64_t now) {
	using W = inbound::DeliveryRateWindows;
	try {
		env.with_tables("counting message history", false, [&](const Env::Tables& t) {
			rates.windows = {};
			rates.built = true;
			Scan scan(t.history_index, t.txn, DB_READ_COMMITTED);
			scan.forward("T", "T" + time_id(now - W::day - W::grace, 0),
			             [&](std::string_view key, std::string_view) {
					     if (key.size() != 17) return true;
					     if (auto r = load(t, read_be64(key, 9), DB_READ_COMMITTED))
						     count_rates(rates, *r, 1);
					     return true;
				     });
		});
	} catch (...) {
		// Counts cut off by a failed read would stand for good (every later
		// message and change adjusts them): built again at the next use.
		rates.windows = {};
		rates.built = false;
		throw;
	}
	rates.expired_at = now;
}

// Seconds older than the day leave every network's counts once a minute.
void expire_rates(Env::HistoryRates& rates, int64_t now) {
	if (!rates.built || now - rates.expired_at < inbound::DeliveryRateWindows::minute) return;
	rates.windows.expire(now);
	rates.expired_at = now;
}

std::string reversed_labels(std::string_view domain) {
	std::string out;
	while (!domain.empty()) {
		size_t dot = domain.rfind('.');
		std::string_view label = dot == std::string_view::npos ? domain : domain.substr(dot + 1);
		if (!out.empty()) out.push_back('.');
		out.append(label);
		domain = dot == std::string_view::npos ? std::string_view() : domain.substr(0, dot);
	}
	return out;
}

// The account's Rejects copies (not expunged), from the 'R' index.
std::vector<inbound::RejectCopy> rejects_in(const Env::Tables& t, const std::string& account) {
	std::vector<inbound::RejectCopy> out;
	std::string prefix = account_prefix('R', account);
	Scan scan(t.history_index, t.txn);
	scan.forward(prefix, prefix, [&](std::string_view key, std::string_view) {
		if (key.size() != prefix.size() + 16) return true;
		if (auto r = load(t, read_be64(key, prefix.size() + 8)))
			out.push_back({r->unique_name, r->message_id, r->sha256, r->received});
		return true;
	});
	return out;
}

}  // namespace

// ---- record encoding: a version byte, then the fields in a fixed order,
// each a length-prefixed string (numbers and flags in text). New fields go
// at the end; a shorter blob leaves them at their defaults.

namespace {

constexpr size_t number_fields = 5;  // id, received, size, DKIM domains, flags

// The plain text fields, in their order after the numbers.
std::vector<std::string*> text_fields(HistoryRecord& r) {
	auto& m = r.identity;
	return {&r.account,
	        &r.mailbox,
	        &r.unique_name,
	        &r.remote_ip,
	        &m.from_localpart,
	        &m.from_domain,
	        &m.from_org_domain,
	        &m.mailfrom_localpart,
	        &m.mailfrom_domain,
	        &m.ehlo_domain,
	        &m.ip1,
	        &m.ip2,
	        &m.ip3,
	        &r.message_id,
	        &r.sha256,
	        &r.reason};
}

}  // namespace

std::string serialize_history_record(const HistoryRecord& record) {
	HistoryRecord r = record;
	std::string out(1, static_cast<char>(record_version));
	std::string dkim;
	for (const auto& d : r.identity.dkim_domains) dkim += d + " ";
	std::string flags;
	flags += r.identity.from_validated ? 'f' : '-';
	flags += r.identity.mailfrom_validated ? 'm' : '-';
	flags += r.identity.ehlo_validated ? 'e' : '-';
	flags += r.expunged ? 'x' : '-';
	flags += r.rejected ? 'r' : '-';
	flags += r.junk == inbound::JunkMark::junk ? 'j' : r.junk == inbound::JunkMark::notjunk ? 'n' : '-';
	for (const std::string& s :
	     {std::to_string(r.id), std::to_string(r.received), std::to_string(r.size), dkim, flags})
		append_string(out, s);
	for (const std::string* field : text_fields(r)) append_string(out, *field);
	return out;
}

std::optional<HistoryRecord> parse_history_record(std::string_view in) {
	if (in.empty() || static_cast<uint8_t>(in[0]) != record_version) return std::nullopt;
	in.remove_prefix(1);
	std::vector<std::string> f;
	std::string s;
	while (!in.empty()) {
		if (!read_string(in, s)) return std::nullopt;
		f.push_back(s);
	}
	HistoryRecord r;
	auto texts = text_fields(r);
	if (f.size() < number_fields + texts.size()) return std::nullopt;
	try {
		r.id = std::stoull(f[0]);
		r.received = std::stoll(f[1]);
		r.size = std::stoll(f[2]);
	} catch (const std::exception&) {
		return std::nullopt;
	}
	for (size_t at = 0, sp; (sp = f[3].find(' ', at)) != std::string::npos; at = sp + 1)
		r.identity.dkim_domains.push_back(f[3].substr(at, sp - at));
	const std::string& flags = f[4];
	if (flags.size() < 6) return std::nullopt;
	r.identity.from_validated = flags[0] == 'f';
	r.identity.mailfrom_validated = flags[1] == 'm';
	r.identity.ehlo_validated = flags[2] == 'e';
	r.expunged = flags[3] == 'x';
	r.rejected = flags[4] == 'r';
	r.junk = flags[5] == 'j' ? inbound::JunkMark::junk
	    : flags[5] == 'n'    ? inbound::JunkMark::notjunk
				 : inbound::JunkMark::unknown;
	for (size_t i = 0; i < texts.size(); ++i) *texts[i] = f[number_fields + i];
	return r;
}

std::array<std::string, 3> ip_masks(const std::string& ip) {
	auto addr = IpAddr::parse(ip);
	if (!addr) return {};
	// doc/behaviour.md §9: /32 /26 /21 for IPv4, /64 /48 /32 for IPv6.
	static constexpr int v4[3] = {32, 26, 21}, v6[3] = {64, 48, 32};
	std::array<std::string, 3> out;
	for (int i = 0; i < 3; ++i) {
		int bits = addr->v6 ? v6[i] : v4[i];
		out[i] = addr->masked(bits).to_string() + "/" + std::to_string(bits);
	}
	return out;
}

std::string sent_domain_key(const std::string& account, const std::string& recipient) {
	size_t at = recipient.rfind('@');
	std::string domain = ascii_lower(at == std::string::npos ? std::string() : recipient.substr(at + 1));
	return account_prefix('d', account) + key_part(reversed_labels(domain));
}

// ---- TxnHistory

template <class Fn>
auto TxnHistory::noting_failure(Fn&& fn) -> decltype(fn()) {
	try {
		return fn();
	} catch (const DbError& e) {
		if (!failure_) failure_ = e;
		throw;
	}
}

std::vector<inbound::MarkedMessage> TxnHistory::marked_messages(const inbound::HistoryQuery& q) {
	return noting_failure([&] { return marked_messages_in(q); });
}

bool TxnHistory::sent_to_address(const std::string& localpart, const std::string& domain, int64_t since) {
	return noting_failure([&] { return sent_to_address_in(localpart, domain, since); });
}

bool TxnHistory::sent_to_domain(const std::string& domain, int64_t since) {
	return noting_failure([&] { return sent_to_domain_in(domain, since); });
}

bool TxnHistory::sent_to_org_domain(const std::string& org_domain, int64_t since) {
	return noting_failure([&] { return sent_to_org_domain_in(org_domain, since); });
}

std::vector<inbound::MarkedMessage> TxnHistory::marked_messages_in(const inbound::HistoryQuery& q) {
	std::vector<inbound::MarkedMessage> out;
	std::string prefix = value_prefix(identity_kind(q.key), account_, q.value);
	Scan scan(t_.history_index, t_.txn);
	scan.backward(prefix, prefix + std::string(16, '\xff'), [&](std::string_view key, std::string_view value) {
		if (key.size() != prefix.size() + 16 || value.size() < 2) return true;
		int64_t received = time_from_order(read_be64(key, prefix.size()));
		if (received < q.since) return false;
		bool validated = value[1] == 'v';
		if (q.from_validated && *q.from_validated != validated) return true;
		out.push_back({received, value[0] == 'j', std::string(value.substr(2))});
		return q.limit == 0 || out.size() < q.limit;
	});
	return out;
}

bool TxnHistory::sent_to_address_in(const std::string& localpart, const std::string& domain, int64_t since) {
	// The outgoing table's per-recipient row (store/db.cpp): first and last use.
	std::string key = "r" + key_part(account_);
	key.push_back('\0');
	key += localpart + "@" + domain;
	auto v = store::get(t_.outgoing, t_.txn, key);
	if (!v) v = store::get(t_.outgoing, t_.txn, key.substr(0, key.size() - domain.size()) + ascii_lower(domain));
	return v && v->size() == 16 && time_from_order(read_be64(*v, 8)) >= since;
}

bool TxnHistory::sent_to_domain_in(const std::string& domain, int64_t since) {
	auto v = store::get(t_.outgoing, t_.txn, sent_domain_key(account_, "@" + domain));
	return v && v->size() == 8 && time_from_order(read_be64(*v, 0)) >= since;
}

bool TxnHistory::sent_to_org_domain_in(const std::string& org_domain, int64_t since) {
	// Every domain under the organizational domain sorts right after it in
	// reversed-label order ("org.example", "org.example.mail", ...).
	std::string base = sent_domain_key(account_, "@" + org_domain);
	bool found = false;
	Scan scan(t_.outgoing, t_.txn);
	scan.forward(base, base, [&](std::string_view key, std::string_view value) {
		if (key.size() > base.size() && key[base.size()] != '.') return true;
		if (value.size() == 8 && time_from_order(read_be64(value, 0)) >= since) found = true;
		return !found;
	});
	return found;
}

// ---- MessageHistory

void MessageHistory::add(std::vector<HistoryRecord>& records) {
	if (records.empty()) return;
	auto& rates = env_.history_rates();
	std::lock_guard lock(rates.mu);
	std::vector<uint64_t> ids;
	env_.with_tables("adding message history", false, [&](const Env::Tables& t) {
		ids.clear();
		uint64_t last = 0;
		auto seq = store::get(t.history, t.txn, "seq", DB_RMW);
		if (seq && seq->size() == 8) last = read_be64(*seq, 0);
		put(t.history, t.txn, "seq", be64(last + records.size()));
		for (auto r : records) {
			r.id = ++last;
			ids.push_back(r.id);
			put(t.history, t.txn, id_key(r.id), serialize_history_record(r));
			index_record(t, r, true);
		}
		adjust_record_count(t, static_cast<int64_t>(records.size()), !seq);
	});
	for (size_t i = 0; i < records.size(); ++i) {
		records[i].id = ids[i];
		count_rates(rates, records[i], 1);
	}
	expire_rates(rates, std::time(nullptr));
}

uint64_t MessageHistory::record_count() {
	// Under the writers' mutex: the one-time count below sees no add or
	// prune half done.
	std::lock_guard lock(env_.history_rates().mu);
	uint64_t count = 0;
	env_.with_tables("counting message history", false, [&](const Env::Tables& t) {
		count = 0;
		if (auto v = store::get(t.history, t.txn, count_key); v && v->size() == 8) {
			count = read_be64(*v, 0);
			return;
		}
		// A table never written to: the first add starts the count
		// (adjust_record_count), and until then an idle server writes nothing.
		if (!store::get(t.history, t.txn, "seq")) return;
		// A history from before the count: walk it once (each page released
		// once read) and keep the count from now on. Records have 8-byte keys.
		Scan scan(t.history, t.txn, DB_READ_COMMITTED);
		scan.forward("", "", [&](std::string_view key, std::string_view) {
			if (key.size() == 8) ++count;
			return true;
		});
		put(t.history, t.txn, count_key, be64(count));
	});
	return count;
}

std::optional<HistoryRecord> MessageHistory::get(uint64_t id) {
	std::optional<HistoryRecord> out;
	env_.with_tables("reading message history", false, [&](const Env::Tables& t) { out = load(t, id); });
	return out;
}

std::optional<HistoryRecord> MessageHistory::find_by_unique_name(const std::string& account,
                                                                 const std::string& unique_name) {
	std::optional<HistoryRecord> out;
	env_.with_tables("reading message history", false, [&](const Env::Tables& t) {
		out.reset();
		auto id = store::get(t.history_index, t.txn, account_prefix('U', account) + key_part(unique_name));
		if (id && id->size() == 8) out = load(t, read_be64(*id, 0));
	});
	return out;
}

namespace {

// The account's record of `unique_name`, read for writing (DB_RMW) in the
// writer's transaction, changed by `change` and written back when it
// returns true: the record before and after, or nullopt. The caller holds
// the delivery-rate mutex and moves the counts after its commit.
std::optional<MessageHistory::Changed> change_by_unique_name(const Env::Tables& t, const std::string& account,
                                                             const std::string& unique_name,
                                                             const std::function<bool(HistoryRecord&)>& change) {
	auto id = store::get(t.history_index, t.txn, account_prefix('U', account) + key_part(unique_name));
	if (!id || id->size() != 8) return std::nullopt;
	auto old = load(t, read_be64(*id), DB_RMW);
	if (!old) return std::nullopt;
	HistoryRecord updated = *old;
	if (!change(updated)) return std::nullopt;
	rewrite_record(t, *old, updated);
	return MessageHistory::Changed{std::move(*old), std::move(updated)};
}

void count_change(Env::HistoryRates& rates, const MessageHistory::Changed& changed) {
	count_rates(rates, changed.before, -1);
	count_rates(rates, changed.after, 1);
}

}  // namespace

std::optional<MessageHistory::Changed>
MessageHistory::update_by_unique_name(const std::string& account, const std::string& unique_name,
                                      const std::function<bool(HistoryRecord&)>& change) {
	auto& rates = env_.history_rates();
	std::lock_guard lock(rates.mu);
	std::optional<Changed> out;
	env_.with_tables("updating message history", false,
	                 [&](const Env::Tables& t) { out = change_by_unique_name(t, account, unique_name, change); });
	if (out) count_change(rates, *out);
	return out;
}

std::vector<MessageHistory::MailboxEntry> MessageHistory::in_mailbox(const std::string& account,
                                                                     const std::string& mailbox) {
	std::vector<MailboxEntry> out;
	env_.with_tables("reading message history", false, [&](const Env::Tables& t) {
		out.clear();
		std::string prefix = value_prefix('B', account, mailbox);
		Scan scan(t.history_index, t.txn);
		scan.forward(prefix, prefix, [&](std::string_view key, std::string_view value) {
			if (key.size() != prefix.size() + 8 || value.empty()) return true;
			inbound::JunkMark mark = value[0] == 'j' ? inbound::JunkMark::junk
			    : value[0] == 'n'                    ? inbound::JunkMark::notjunk
								 : inbound::JunkMark::unknown;
			out.push_back({std::string(value.substr(1)), read_be64(key, prefix.size()), mark});
			return true;
		});
	});
	return out;
}

namespace {

// The mailbox names under the account's 'B' prefix. Each key of a mailbox
// starts with its name and a 0; the cursor then goes to the first key
// past every one of them (name and 1), not through the mailbox's records.
std::vector<std::string> mailboxes_in(const Env::Tables& t, const std::string& account) {
	std::vector<std::string> mailboxes;
	const std::string prefix = account_prefix('B', account);
	Scan scan(t.history_index, t.txn);
	scan.key.set(prefix);
	for (bool ok = scan.step(DB_SET_RANGE); ok && scan.key.view().starts_with(prefix);
	     ok = scan.step(DB_SET_RANGE)) {
		std::string_view after_prefix = scan.key.view().substr(prefix.size());
		std::string_view mailbox = after_prefix.substr(0, after_prefix.find('\0'));
		// A key without the 0 after its mailbox is no record's: passed over.
		if (mailbox.size() < after_prefix.size()) mailboxes.emplace_back(mailbox);
		std::string next = prefix;
		next += mailbox;
		next.push_back('\1');
		scan.key.set(next);
	}
	return mailboxes;
}

}  // namespace

std::vector<std::string> MessageHistory::mailboxes_with_records(const std::string& account) {
	std::vector<std::string> out;
	env_.with_tables("reading message history", false,
	                 [&](const Env::Tables& t) { out = mailboxes_in(t, account); });
	return out;
}

namespace {

// inbound::reputation in one transaction. A database error it met is
// thrown again: as a deadlock the transaction runner aborts and runs the
// transaction anew, instead of the message getting 451 (and the deadlocked
// transaction, used on, failing its next cursor with EINVAL).
inbound::ReputationAnswer reputation_in(const Env::Tables& t, const std::string& account,
                                        const inbound::MessageIdentity& message, int64_t now) {
	TxnHistory history(t, account);
	inbound::ReputationAnswer answer = inbound::reputation(message, history, now);
	if (history.failure()) throw *history.failure();
	return answer;
}

}  // namespace

inbound::ReputationAnswer MessageHistory::reputation(const std::string& account,
                                                     const inbound::MessageIdentity& message, int64_t now) {
	inbound::ReputationAnswer answer;
	env_.with_tables("reading message history", false,
	                 [&](const Env::Tables& t) { answer = reputation_in(t, account, message, now); });
	return answer;
}

std::array<inbound::NetworkHistoryCount, 3>
MessageHistory::delivery_counts(const std::string& account, const std::array<std::string, 3>& masks, int64_t now) {
	auto& rates = env_.history_rates();
	std::lock_guard lock(rates.mu);
	if (!rates.built) build_rates(env_, rates, now);
	return rates.windows.counts(account, masks, now);
}

std::vector<inbound::RejectCopy> MessageHistory::rejects(const std::string& account) {
	std::vector<inbound::RejectCopy> out;
	env_.with_tables("reading message history", false, [&](const Env::Tables& t) { out = rejects_in(t, account); });
	return out;
}

MessageHistory::AccountLookups MessageHistory::reputation_and_rejects(const std::string& account,
                                                                      const inbound::MessageIdentity& message,
                                                                      int64_t now) {
	AccountLookups out;
	env_.with_tables("reading message history", false, [&](const Env::Tables& t) {
		out.reputation = reputation_in(t, account, message, now);
		out.rejects = rejects_in(t, account);
	});
	return out;
}

size_t MessageHistory::mark_expunged(const std::string& account, const std::vector<std::string>& unique_names) {
	if (unique_names.empty()) return 0;
	auto& rates = env_.history_rates();
	std::lock_guard lock(rates.mu);
	std::vector<Changed> expunged;
	auto expunge = [](HistoryRecord& r) { return !std::exchange(r.expunged, true); };
	env_.with_tables("updating message history", false, [&](const Env::Tables& t) {
		expunged.clear();
		for (const auto& name : unique_names)
			if (auto changed = change_by_unique_name(t, account, name, expunge))
				expunged.push_back(std::move(*changed));
	});
	for (const Changed& changed : expunged) count_change(rates, changed);
	return expunged.size();
}

size_t MessageHistory::prune(int64_t cutoff, size_t max) {
	auto& rates = env_.history_rates();
	std::lock_guard lock(rates.mu);
	std::vector<HistoryRecord> pruned;
	env_.with_tables("pruning message history", false, [&](const Env::Tables& t) {
		pruned.clear();
		std::vector<std::string> time_keys;
		{
			Scan scan(t.history_index, t.txn);
			scan.forward("T", "T", [&](std::string_view key, std::string_view) {
				if (key.size() != 17 || time_from_order(read_be64(key, 1)) >= cutoff) return false;
				time_keys.emplace_back(key);
				return time_keys.size() < max;
			});
		}
		for (const std::string& time_key : time_keys) {
			const uint64_t id = read_be64(time_key, 9);
			auto r = load(t, id, DB_RMW);
			if (!r) {
				// Gone, or passed over for not decoding: its time key (and
				// what is left of it) goes, or every prune would meet it
				// first. Its other index entries cannot be known.
				del(t.history_index, t.txn, time_key);
				del(t.history, t.txn, id_key(id));
				continue;
			}
			index_record(t, *r, false);
			del(t.history, t.txn, id_key(id));
			pruned.push_back(std::move(*r));
		}
		if (!pruned.empty()) adjust_record_count(t, -static_cast<int64_t>(pruned.size()), false);
	});
	// A history kept for less than a day prunes copies the rates still count.
	for (const auto& r : pruned) count_rates(rates, r, -1);
	return pruned.size();
}

size_t MessageHistory::count() {
	size_t n = 0;
	env_.with_tables("counting message history", false, [&](const Env::Tables& t) {
		n = 0;
		Scan scan(t.history_index, t.txn);
		scan.forward("T", "T", [&](std::string_view, std::string_view) {
			++n;
			return true;
		});
	});
	return n;
}

}  // namespace tern::store
