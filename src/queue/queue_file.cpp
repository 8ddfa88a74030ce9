#include "queue/queue_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>

#include "store/files.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/unique_fd.h"

namespace tern::queue {

namespace {

constexpr std::string_view magic = "tern-queue 1 ";
constexpr size_t size_digits = 10;
constexpr char masked = '-';

std::string state_name(RecipientState s) { return std::string(1, static_cast<char>(s)); }

std::optional<RecipientState> parse_state(std::string_view v) {
	if (v.size() != 1) return std::nullopt;
	switch (v[0]) {
	case 'P': return RecipientState::pending;
	case 'D': return RecipientState::delivered;
	case 'F': return RecipientState::failed;
	case 'X': return RecipientState::dropped;
	default: return std::nullopt;
	}
}

// FNV-1a 64 over `bytes` with the in-place bytes at `skip` replaced by a
// fixed one: a cheap check against garbled or mixed-up headers, not a
// defence against anyone who can write the queue directory.
uint64_t header_sum(std::string_view bytes, const std::vector<int64_t>& skip) {
	std::set<int64_t> masked_at(skip.begin(), skip.end());
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < bytes.size(); i++) {
		char c = masked_at.count(static_cast<int64_t>(i)) ? masked : bytes[i];
		h ^= static_cast<unsigned char>(c);
		h *= 1099511628211ULL;
	}
	return h;
}

std::string hex16(uint64_t v) {
	char buf[17];
	std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
	return buf;
}

std::optional<int64_t> parse_decimal(std::string_view v) {
	if (v.empty() || v.size() > 18) return std::nullopt;
	bool negative = v[0] == '-';
	if (negative) v.remove_prefix(1);
	if (v.empty()) return std::nullopt;
	int64_t n = 0;
	for (char c : v) {
		if (c < '0' || c > '9') return std::nullopt;
		n = n * 10 + (c - '0');
	}
	return negative ? -n : n;
}

// Appends one field and returns the offset of its value.
size_t put(std::string& out, std::string_view name, std::string_view value) {
	out.append(name);
	out += ' ';
	out += std::to_string(value.size());
	out += ':';
	size_t at = out.size();
	out.append(value);
	out += '\n';
	return at;
}


bool pread_all(int fd, char* p, size_t n, int64_t offset) {
	while (n > 0) {
		ssize_t r = ::pread(fd, p, n, offset);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return false;
		p += r;
		n -= static_cast<size_t>(r);
		offset += r;
	}
	return true;
}

}  // namespace

std::string encode_queue_file_header(const QueueFileEnvelope& e, QueueFileLayout* layout) {
	QueueFileLayout l;
	std::string out(magic);
	out.append(size_digits, '0');
	out += '\n';
	l.acknowledged_offset = static_cast<int64_t>(put(out, "acknowledged", e.acknowledged ? "1" : "0"));
	put(out, "queued", std::to_string(e.queued));
	put(out, "account", e.sender_account);
	put(out, "from", e.from);
	put(out, "message-id", e.message_id);
	put(out, "8bit", e.has_8bit ? "1" : "0");
	put(out, "smtputf8", e.smtputf8 ? "1" : "0");
	put(out, "size", std::to_string(e.data_size));
	if (!e.dsn_utf8.empty()) put(out, "dsn-utf8", e.dsn_utf8);
	if (!e.dsn_ret.empty()) put(out, "dsn-ret", e.dsn_ret);
	if (!e.envid.empty()) put(out, "envid", e.envid);
	if (e.requiretls) put(out, "requiretls", "1");
	for (const auto& r : e.recipients) {
		l.state_offsets.push_back(static_cast<int64_t>(put(out, "rcpt-state", state_name(r.state))));
		put(out, "rcpt-to", r.to);
		put(out, "rcpt-domain", r.domain);
		put(out, "rcpt-prefix", r.prefix);
		if (r.notify != 0) put(out, "rcpt-notify", std::to_string(r.notify));
		if (!r.orcpt.empty()) put(out, "rcpt-orcpt", r.orcpt);
	}
	// The size covers the sum line too: fill it in before summing.
	const size_t total = out.size() + 4 + 16 + 1;
	std::string digits = std::to_string(total);
	out.replace(magic.size() + size_digits - digits.size(), digits.size(), digits);
	std::vector<int64_t> skip = l.state_offsets;
	skip.push_back(l.acknowledged_offset);
	out += "sum " + hex16(header_sum(out, skip)) + "\n";
	l.data_offset = static_cast<int64_t>(out.size());
	if (layout) *layout = std::move(l);
	return out;
}

std::optional<size_t> queue_file_header_size(std::string_view p, std::string& error) {
	const size_t common = std::min(p.size(), magic.size());
	const bool starts_like_one = !p.empty() && p.substr(0, common) == magic.substr(0, common);
	if (p.size() < queue_file_preamble_size) {
		error = starts_like_one ? "truncated queue file header" : "not a queue file (no envelope header)";
		return std::nullopt;
	}
	if (p.substr(0, magic.size()) != magic || p[queue_file_preamble_size - 1] != '\n') {
		error = "not a queue file (no envelope header)";
		return std::nullopt;
	}
	auto n = parse_decimal(p.substr(magic.size(), size_digits));
	if (!n || *n < static_cast<int64_t>(queue_file_preamble_size) ||
	    *n > static_cast<int64_t>(queue_file_max_header)) {
		error = "queue file header size is garbled";
		return std::nullopt;
	}
	return static_cast<size_t>(*n);
}

namespace {

// The fields every queue file header must have.
struct RequiredFields {
	bool acknowledged = false, queued = false, from = false, size = false;
	bool all() const { return acknowledged && queued && from && size; }
};

bool parse_flag(std::string_view v, bool& field) {
	if (v != "0" && v != "1") return false;
	field = v == "1";
	return true;
}

// A recipient's field; false with `why` set when it is misplaced or bad.
bool apply_recipient_field(std::string_view name, std::string_view v, size_t at, ParsedQueueFile& out,
                           std::string& why) {
	QueueFileEnvelope& e = out.envelope;
	if (name == "rcpt-state") {
		auto state = parse_state(v);
		e.recipients.push_back({});
		e.recipients.back().state = state.value_or(RecipientState::pending);
		out.layout.state_offsets.push_back(static_cast<int64_t>(at));
		if (!state) why = "bad value of " + std::string(name);
		return state.has_value();
	}
	if (e.recipients.empty()) {
		why = std::string(name) + " before rcpt-state";
		return false;
	}
	QueueFileRecipient& r = e.recipients.back();
	if (name == "rcpt-to" || name == "rcpt-domain" || name == "rcpt-prefix") {
		(name == "rcpt-to" ? r.to : name == "rcpt-domain" ? r.domain : r.prefix) = v;
	} else if (name == "rcpt-orcpt") {
		r.orcpt = v;
	} else {
		auto n = parse_decimal(v);
		r.notify = static_cast<int>(n.value_or(0));
		if (!n || *n <= 0 || *n >= 16) {
			why = "bad value of " + std::string(name);
			return false;
		}
	}
	return true;
}

// One field at offset `at`; false with `why` set when its value is bad.
// Unknown names are fields of a newer tern, skipped.
bool apply_field(std::string_view name, std::string_view v, size_t at, ParsedQueueFile& out, RequiredFields& seen,
                 std::string& why) {
	if (name == "rcpt-state" || name == "rcpt-to" || name == "rcpt-domain" || name == "rcpt-prefix" ||
	    name == "rcpt-notify" || name == "rcpt-orcpt")
		return apply_recipient_field(name, v, at, out, why);
	QueueFileEnvelope& e = out.envelope;
	bool ok = true;
	if (name == "acknowledged") {
		ok = parse_flag(v, e.acknowledged);
		out.layout.acknowledged_offset = static_cast<int64_t>(at);
		seen.acknowledged = true;
	} else if (name == "queued" || name == "size") {
		auto n = parse_decimal(v);
		ok = n && (name == "queued" || *n >= 0);
		(name == "queued" ? e.queued : e.data_size) = n.value_or(0);
		(name == "queued" ? seen.queued : seen.size) = true;
	} else if (name == "from") {
		e.from = v;
		seen.from = true;
	} else if (name == "8bit" || name == "smtputf8" || name == "requiretls") {
		ok = parse_flag(v, name == "8bit" ? e.has_8bit : name == "smtputf8" ? e.smtputf8 : e.requiretls);
	} else if (name == "dsn-ret") {
		ok = v == "FULL" || v == "HDRS";
		e.dsn_ret = v;
	} else if (name == "account" || name == "message-id" || name == "dsn-utf8" || name == "envid") {
		(name == "account"          ? e.sender_account
		     : name == "message-id" ? e.message_id
		     : name == "dsn-utf8"   ? e.dsn_utf8
		                            : e.envid) = v;
	}
	if (!ok) why = "bad value of " + std::string(name);
	return ok;
}

// The checks once the checksum line was read; "" when the file is whole.
std::string check_complete(ParsedQueueFile& out, const RequiredFields& seen, size_t header_size, int64_t file_size) {
	const QueueFileEnvelope& e = out.envelope;
	if (!seen.all() || e.recipients.empty()) return "queue file header: missing fields";
	for (const auto& r : e.recipients)
		if (r.to.empty() || r.domain.empty()) return "queue file header: recipient without address";
	out.layout.data_offset = static_cast<int64_t>(header_size);
	if (file_size < out.layout.data_offset + e.data_size) return "truncated queue file (message data incomplete)";
	if (file_size > out.layout.data_offset + e.data_size) return "queue file longer than announced";
	return "";
}

}  // namespace

std::optional<ParsedQueueFile> parse_queue_file_header(std::string_view header, int64_t file_size, std::string& error) {
	auto announced = queue_file_header_size(header, error);
	if (!announced) return std::nullopt;
	if (header.size() < *announced || file_size < static_cast<int64_t>(*announced)) {
		error = "truncated queue file header";
		return std::nullopt;
	}
	header = header.substr(0, *announced);
	ParsedQueueFile out;
	RequiredFields seen;
	bool have_sum = false;
	size_t pos = queue_file_preamble_size;
	auto fail = [&](const std::string& why) {
		error = "queue file header: " + why;
		return std::nullopt;
	};
	while (pos < header.size()) {
		size_t space = header.find(' ', pos);
		if (space == std::string_view::npos || space - pos > 32) return fail("garbled field name");
		std::string_view name = header.substr(pos, space - pos);
		if (name == "sum") {
			if (header.size() - space - 1 != 17 || header.back() != '\n')
				return fail("garbled checksum line");
			std::vector<int64_t> skip = out.layout.state_offsets;
			skip.push_back(out.layout.acknowledged_offset);
			if (header.substr(space + 1, 16) != hex16(header_sum(header.substr(0, pos), skip)))
				return fail("checksum mismatch");
			have_sum = true;
			break;
		}
		size_t colon = header.find(':', space + 1);
		if (colon == std::string_view::npos || colon - space - 1 > 12) return fail("garbled field length");
		auto len = parse_decimal(header.substr(space + 1, colon - space - 1));
		if (!len || *len < 0 || static_cast<size_t>(*len) > header.size() - colon - 1 ||
		    header[colon + 1 + static_cast<size_t>(*len)] != '\n')
			return fail("field " + std::string(name) + " runs past its end");
		const size_t at = colon + 1;
		std::string_view v = header.substr(at, static_cast<size_t>(*len));
		pos = at + v.size() + 1;
		std::string why;
		if (!apply_field(name, v, at, out, seen, why)) return fail(why);
	}
	if (!have_sum) return fail("no checksum");
	error = check_complete(out, seen, header.size(), file_size);
	if (!error.empty()) return std::nullopt;
	return out;
}

std::optional<size_t> queue_link_index(const std::string& name) {
	size_t dot = name.rfind('.');
	if (dot == std::string::npos || dot == 0 || dot + 1 == name.size() || name[0] == '.') return std::nullopt;
	auto n = parse_decimal(std::string_view(name).substr(dot + 1));
	if (!n || *n < 0 || name[dot + 1] == '-' || name.size() - dot - 1 > 9) return std::nullopt;
	return static_cast<size_t>(*n);
}

std::string queue_link_base(const std::string& name) {
	if (!queue_link_index(name)) return "";
	return name.substr(0, name.rfind('.'));
}

std::string queue_temp_name(const std::string& base) { return "." + base + ".new"; }

std::string queue_temp_base(const std::string& name) {
	if (name.size() <= 5 || name[0] != '.' || name.compare(name.size() - 4, 4, ".new") != 0) return "";
	return name.substr(1, name.size() - 5);
}

QueueFileLayout write_queue_file(const std::string& path, const QueueFileEnvelope& envelope,
                                 const std::string& data_path) {
	QueueFileLayout layout;
	std::string header = encode_queue_file_header(envelope, &layout);
	UniqueFd in(::open(data_path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!in) throw store::file_error("open", data_path, errno);
	UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!out) throw store::file_error("create", path, errno);
	// Removed on every failure below; the caller renames a complete file.
	TempFile incomplete(path);
	store::write_all(out.get(), header, path);
	// The header announced the size; a file that disagrees would be
	// refused by every later rebuild.
	struct stat data_stat;
	if (::fstat(in.get(), &data_stat) != 0) throw store::file_error("stat", data_path, errno);
	const auto expected = static_cast<uint64_t>(envelope.data_size);
	auto wrong_size = [&](uint64_t size) {
		return std::runtime_error("message file " + data_path + " has " + std::to_string(size) +
		                          " bytes, expected " + std::to_string(expected));
	};
	if (static_cast<uint64_t>(data_stat.st_size) != expected) throw wrong_size(data_stat.st_size);
	uint64_t copied = store::copy_file_bytes(in.get(), data_path, out.get(), path, 0, expected);
	if (copied != expected) throw wrong_size(copied);
	if (::fsync(out.get()) != 0) throw store::file_error("fsync", path, errno);
	in.reset();
	if (out.close() != 0) throw store::file_error("close", path, errno);
	incomplete.commit();
	return layout;
}

std::optional<ParsedQueueFile> read_queue_file(const std::string& path, std::string& error) {
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd) {
		error = store::file_error_text("open", path, errno);
		return std::nullopt;
	}
	struct stat sb;
	std::string head(queue_file_preamble_size, '\0');
	if (::fstat(fd.get(), &sb) != 0) {
		error = store::file_error_text("stat", path, errno);
		return std::nullopt;
	}
	head.resize(std::min<size_t>(head.size(), static_cast<size_t>(sb.st_size)));
	if (!pread_all(fd.get(), head.data(), head.size(), 0)) {
		error = store::file_error_text("read", path, errno);
		return std::nullopt;
	}
	auto size = queue_file_header_size(head, error);
	if (!size) return std::nullopt;
	std::string header(std::min<size_t>(*size, static_cast<size_t>(sb.st_size)), '\0');
	if (!pread_all(fd.get(), header.data(), header.size(), 0)) {
		error = store::file_error_text("read", path, errno);
		return std::nullopt;
	}
	return parse_queue_file_header(header, static_cast<int64_t>(sb.st_size), error);
}

bool poke_queue_file(const std::string& path, int64_t offset, char value) {
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
	return fd && ::pwrite(fd.get(), &value, 1, offset) == 1;
}

bool mark_recipient(const std::string& queue_dir, const std::string& link_name, RecipientState state) {
	auto index = queue_link_index(link_name);
	if (!index) return false;
	std::string path = queue_dir + "/" + link_name;
	std::string error;
	auto parsed = read_queue_file(path, error);
	if (!parsed || *index >= parsed->layout.state_offsets.size()) return false;
	return poke_queue_file(path, parsed->layout.state_offsets[*index], static_cast<char>(state));
}

store::QueueRecord queue_record_for(const QueueFileEnvelope& e, size_t index, const std::string& link_name,
                                    int64_t data_offset, int64_t next_attempt) {
	const QueueFileRecipient& rcpt = e.recipients.at(index);
	store::QueueRecord r;
	r.queued = e.queued;
	r.sender_account = e.sender_account;
	r.from = e.from;
	r.to = rcpt.to;
	r.recipient_domain = ascii_lower(rcpt.domain);
	r.next_attempt = next_attempt;
	r.has_8bit = e.has_8bit;
	r.smtputf8 = e.smtputf8;
	r.size = static_cast<int64_t>(rcpt.prefix.size()) + e.data_size;
	r.message_id = e.message_id;
	r.prefix = rcpt.prefix;
	r.message_file = link_name;
	r.dsn_utf8 = e.dsn_utf8;
	r.data_offset = data_offset;
	r.dsn_ret = e.dsn_ret;
	r.envid = e.envid;
	r.requiretls = e.requiretls;
	r.notify = rcpt.notify;
	r.orcpt = rcpt.orcpt;
	return r;
}

namespace {

// The names in a directory but "." and "..", in the order it lists them.
std::vector<std::string> entries_of(const std::string& dir) {
	std::vector<std::string> names;
	if (DIR* d = ::opendir(dir.c_str())) {
		while (dirent* e = ::readdir(d)) {
			std::string name = e->d_name;
			if (name != "." && name != "..") names.push_back(name);
		}
		::closedir(d);
	}
	return names;
}

// The links of one message are one file: its header is read once per
// rebuild, not once per recipient. The rebuild visits the links in name
// order, so one message's links come one after another and only the last
// message's header is kept (not every queued message's at once).
struct LastHeader {
	std::string base;
	std::optional<QueueFileEnvelope> header;
};

// A link whose record is still there although its header marks the copy
// finished (delivered, failed, dropped): the end of remove_record that a
// crash or a database failure cut off after the mark (the mark comes
// first). The record goes now, with the link, or the copy would be sent
// again. A header that cannot be read keeps its record, as it is.
bool finish_marked_copy(store::Env& env, const std::string& queue_dir, const std::string& name, uint64_t id,
                        LastHeader& last) {
	auto index = queue_link_index(name);
	if (!index) return false;
	const std::string path = queue_dir + "/" + name;
	if (std::string base = queue_link_base(name); base != last.base) {
		last.base = std::move(base);
		last.header.reset();
		std::string error;
		if (auto parsed = read_queue_file(path, error)) last.header = std::move(parsed->envelope);
	}
	const std::optional<QueueFileEnvelope>& header = last.header;
	if (!header || *index >= header->recipients.size()) return false;
	const RecipientState state = header->recipients[*index].state;
	if (state == RecipientState::pending) return false;
	env.queue_remove(id);
	::unlink(path.c_str());
	log::info("queue: removed the record of a finished copy",
	          {{"id", std::to_string(id)}, {"file", name}, {"state", state_name(state)}});
	return true;
}

RebuildReport rebuild_unlocked(store::Env& env, const std::string& queue_dir, int64_t now,
                               const std::function<bool(const std::string& base)>& in_progress) {
	RebuildReport report;
	// The order matters against a concurrent enqueue: the directory first,
	// then the in-progress check, then the records. A link seen here whose
	// enqueue is no longer in progress has its records committed already.
	std::vector<std::string> candidates;
	for (auto& name : entries_of(queue_dir)) {
		std::string base = queue_link_base(name);
		if (base.empty()) base = queue_temp_base(name);
		if (!in_progress || base.empty() || !in_progress(base)) candidates.push_back(name);
	}
	std::sort(candidates.begin(), candidates.end());  // a message's links together
	// A record that does not decode goes: its link then gets a new record
	// from its header below (or is deleted when its copy is finished).
	if (size_t gone = env.queue_remove_undecodable())
		log::info("queue: removed records that do not decode", {{"records", std::to_string(gone)}});
	std::map<std::string, uint64_t> referenced;  // link name -> its record's id
	env.queue_scan([&] { referenced.clear(); },
	               [&](const store::QueueRecord& r) { referenced.emplace(r.message_file, r.id); });

	LastHeader last;
	for (auto& name : candidates) {
		if (auto record = referenced.find(name); record != referenced.end()) {
			if (finish_marked_copy(env, queue_dir, name, record->second, last)) report.removed++;
			continue;
		}
		std::string path = queue_dir + "/" + name;
		struct stat sb;
		if (::lstat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
		if (!queue_temp_base(name).empty()) {
			// Written by an enqueue that died before the rename: it never
			// got a record, nor a 250.
			::unlink(path.c_str());
			report.removed++;
			log::info("queue: removed incomplete file", {{"file", name}});
			continue;
		}
		auto index = queue_link_index(name);
		std::string error;
		auto parsed = index ? read_queue_file(path, error) : std::nullopt;
		if (!index) error = "not a queue file name";
		if (parsed && *index >= parsed->envelope.recipients.size()) {
			parsed.reset();
			error = "no recipient " + std::to_string(*index) + " in its header";
		}
		if (!parsed) {
			// Possibly acknowledged mail: never deleted on a guess.
			report.unreadable++;
			log::error("queue: file without a record kept, cannot rebuild it",
			           {{"file", name}, {"err", error}});
			continue;
		}
		const QueueFileEnvelope& e = parsed->envelope;
		const QueueFileRecipient& rcpt = e.recipients[*index];
		if (!e.acknowledged || rcpt.state != RecipientState::pending) {
			// Never acknowledged (its enqueue died before the commit, so no
			// 250 went out), or this copy is finished.
			::unlink(path.c_str());
			report.removed++;
			log::info(e.acknowledged ? "queue: removed finished file"
			                         : "queue: removed unacknowledged file",
			          {{"file", name}, {"state", state_name(rcpt.state)}});
			continue;
		}
		report.records.push_back(queue_record_for(e, *index, name, parsed->layout.data_offset, now));
	}
	if (!report.records.empty()) {
		env.queue_add_many(report.records);
		for (auto& r : report.records)
			log::info(
			    "queue: rebuilt record from its file",
			    {{"id", std::to_string(r.id)}, {"file", r.message_file}, {"from", r.from}, {"to", r.to}});
	}
	report.rebuilt = report.records.size();
	return report;
}

}  // namespace

RebuildReport rebuild_queue(store::Env& env, const std::string& queue_dir, int64_t now,
                            const std::function<bool(const std::string& base)>& in_progress) {
	// Two rebuilds at once (SIGUSR2 twice, start-up and `ternctl queue
	// rebuild`) would each find the same link without a record and each
	// make one: the message would go out twice.
	static std::mutex one_at_a_time;
	std::lock_guard lock(one_at_a_time);
	return rebuild_unlocked(env, queue_dir, now, in_progress);
}

}  // namespace tern::queue
