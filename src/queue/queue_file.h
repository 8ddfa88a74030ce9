// Self-describing queue files: each message file in data_dir/queue starts
// with a header block holding the envelope (sender, sender account, every
// recipient with its per-copy header prefix and its state, flags, message
// id, DSN variant), followed by the message bytes exactly as they are sent.
// The file alone is enough to deliver its pending recipients again when the
// queue database lost their records (`ternctl queue rebuild`, and the same
// rebuild when ternd starts).
//
// Layout (text, so `head` on a queue file shows the envelope):
//   "tern-queue 1 " + header size (10 decimal digits, = the data offset) + LF
//   fields: NAME SP LENGTH ":" VALUE LF   (VALUE is LENGTH raw bytes)
//   "sum" SP 16 hex digits LF             (FNV-1a 64 of everything before
//                                          it, bytes updated in place masked)
//   message data ("size" bytes)
// Optional fields are written only when set ("dsn-utf8", "dsn-ret",
// "envid", "requiretls"; per recipient "rcpt-notify", "rcpt-orcpt"), so
// files of an older tern, which lack them, read with their defaults.
// Two kinds of bytes are updated in place after the file was written,
// without rewriting it: the "acknowledged" flag (set once the records are
// committed, i.e. before the 250; a file without it never got one) and
// each recipient's state (pending until the copy was delivered, bounced or
// dropped). The checksum skips them.
//
// The encoder and parser are pure; the file functions below block on disk
// (worker threads or ternctl only).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/db.h"

namespace tern::queue {

// data_dir/queue: the message files.
inline std::string queue_dir(const std::string& data_dir) { return data_dir + "/queue"; }
// One message file there, by its name (QueueRecord::message_file).
inline std::string queue_file_path(const std::string& data_dir, const std::string& file) {
	return queue_dir(data_dir) + "/" + file;
}

enum class RecipientState : char { pending = 'P', delivered = 'D', failed = 'F', dropped = 'X' };

struct QueueFileRecipient {
	std::string to;
	std::string domain;  // ASCII, lower case
	std::string prefix;  // header lines sent before the data for this copy
	RecipientState state = RecipientState::pending;
	int notify = 0;          // RFC 3461 4.1 NOTIFY bits (smtp::DsnNotify), 0 = not given
	std::string orcpt = {};  // RFC 3461 4.2 ORCPT, "type;address" decoded ("" = none)

	bool operator==(const QueueFileRecipient&) const = default;
};

struct QueueFileEnvelope {
	bool acknowledged = false;
	int64_t queued = 0;          // unix seconds
	std::string sender_account;  // "" for DSNs
	std::string from;            // reverse path, "" = null
	std::string message_id;
	bool has_8bit = false;
	bool smtputf8 = false;
	std::string dsn_utf8;     // optional UTF-8 variant of a DSN
	int64_t data_size = 0;    // message bytes after the header
	std::string dsn_ret;      // RFC 3461 4.3: "FULL", "HDRS" or ""
	std::string envid;        // RFC 3461 4.4, decoded ("" = none)
	bool requiretls = false;  // RFC 8689
	std::vector<QueueFileRecipient> recipients;

	bool operator==(const QueueFileEnvelope&) const = default;
};

// Offsets in the file of what is updated in place, and of the data.
struct QueueFileLayout {
	int64_t data_offset = 0;
	int64_t acknowledged_offset = 0;
	std::vector<int64_t> state_offsets;  // one per recipient
};

struct ParsedQueueFile {
	QueueFileEnvelope envelope;
	QueueFileLayout layout;
};

// The bytes before the first field: magic, version and header size.
constexpr size_t queue_file_preamble_size = 24;
// Refused above this: no envelope is that large, a garbled size would be.
constexpr size_t queue_file_max_header = 64 * 1024 * 1024;

// The header block for `envelope` (the data follows it); `layout` gets the
// offsets of the bytes updated in place.
std::string encode_queue_file_header(const QueueFileEnvelope& envelope, QueueFileLayout* layout = nullptr);

// The header size announced by a file's first queue_file_preamble_size
// bytes; nullopt (with `error`) when they are not a queue file's.
std::optional<size_t> queue_file_header_size(std::string_view preamble, std::string& error);

// Parses a whole header block (the file's first header-size bytes) of a
// file of `file_size` bytes. nullopt with `error` for anything truncated,
// garbled (checksum, syntax, unknown state) or incomplete (missing fields,
// data shorter or longer than announced).
std::optional<ParsedQueueFile> parse_queue_file_header(std::string_view header, int64_t file_size, std::string& error);

// The recipient index of a queue file link name "<base>.<n>"; nullopt for
// any other name.
std::optional<size_t> queue_link_index(const std::string& name);
// "<base>" of "<base>.<n>" ("" for other names).
std::string queue_link_base(const std::string& name);
// The name of a queue file while it is written (".<base>.new"): never a
// link name, so a crash mid-write leaves nothing to deliver or rebuild.
std::string queue_temp_name(const std::string& base);
// "<base>" of a temp name ("" for other names).
std::string queue_temp_base(const std::string& name);

// ---- blocking file functions

// Writes header + the bytes of `data_path` into the new file `path`
// (O_EXCL) and fsyncs it. Throws std::runtime_error (after removing `path`).
QueueFileLayout write_queue_file(const std::string& path, const QueueFileEnvelope& envelope,
                                 const std::string& data_path);

// Reads and parses the header of the queue file at `path`.
std::optional<ParsedQueueFile> read_queue_file(const std::string& path, std::string& error);

// Writes one byte at `offset` (no fsync: the database commit that follows
// is the durable record; the byte is what a later rebuild reads, and a
// crash of the process keeps it in the page cache). False on failure.
bool poke_queue_file(const std::string& path, int64_t offset, char value);

// Records the end of one copy in its file: the state of recipient <n> of
// link "<dir>/<base>.<n>". Files without a header (written by an older
// tern) are left as they are. False when nothing was written.
bool mark_recipient(const std::string& queue_dir, const std::string& link_name, RecipientState state);

// The queue record of recipient `index` of a file (link `link_name`), as
// the enqueue commits it and a rebuild restores it: a fresh schedule.
store::QueueRecord queue_record_for(const QueueFileEnvelope& envelope, size_t index, const std::string& link_name,
                                    int64_t data_offset, int64_t next_attempt);

// What a rebuild found among the links without a record.
struct RebuildReport {
	size_t rebuilt = 0;                       // records added from file headers
	size_t removed = 0;                       // finished or never acknowledged links deleted
	size_t unreadable = 0;                    // links kept as they are (no or a damaged header)
	std::vector<store::QueueRecord> records;  // the records added
};

// Rebuilds the queue records the database lacks from the files in
// `queue_dir`: a link "<base>.<n>" without a record gets one from its
// header when recipient n is pending and the file was acknowledged; a link
// of a finished recipient, of a file that never got its 250, or a temp
// file left by a crash mid-write, is deleted, and so is the record of a
// link its header marks finished (a removal cut off after the mark), and
// a record that does not decode (its link then counts as one without a
// record); any other file is kept and logged. `in_progress(base)` is true
// for messages being enqueued right now (their records may commit at any
// moment), which are skipped. Used by ternd at start and on SIGUSR2, and by
// `ternctl queue rebuild`. Throws on database errors.
RebuildReport rebuild_queue(store::Env& env, const std::string& queue_dir, int64_t now,
                            const std::function<bool(const std::string& base)>& in_progress);

}  // namespace tern::queue
