// Berkeley DB 5.3 store (C API). See db.h for the threading and process
// rules. Key layouts (all integers big-endian so that byte order is time or
// id order, which makes every query a B-tree range scan):
//   passwords:  account                                  → secrets blob
//   outgoing:   'h' account 0x00 time(be64) seq(be64)      → recipient
//               'r' account 0x00 recipient                 → first(be64) last(be64)
//   queue:      id(be64)                                   → serialize_queue_record
//   meta:       "schema"                                   → version(be64)
//               "seq.queue", "seq.outgoing"                → last used value(be64)
//   history, history_index: see store/history.cpp; outgoing also holds
//               'd' rows, store::sent_domain_key → last(be64)
// Signed times are stored with the sign bit flipped so negatives sort first.
#include "store/db.h"

#include "store/records.h"
#include "store/table.h"
#include "store/history.h"
#include "util/log.h"
#include "util/unique_fd.h"

#include <db.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>

namespace tern::store {

namespace {

constexpr int64_t history_retention_s = 30 * 24 * 3600;
constexpr int64_t send_limit_window_s = 24 * 3600;
constexpr int max_prune_per_write = 1000;
constexpr int max_deadlock_retries = 8;
constexpr uint64_t schema_version = 1;

// The library's own diagnostic for the failing call (set_errcall), kept per
// thread so that concurrent failures do not mix their texts.
thread_local std::string last_db_message;

void remember_db_message(const DB_ENV*, const char*, const char* msg) { last_db_message = msg ? msg : ""; }

// Puts and deletes on this thread so far (note_write): a transaction that
// changed none wrote no log, and counts for nothing in Env::writes_committed.
thread_local uint64_t writes_on_this_thread = 0;
void note_write() { ++writes_on_this_thread; }

// The library's informational messages (recovery's, failchk's "Freeing
// read locks for locker ..."), which it would print on stderr: into our log.
void log_db_message(const DB_ENV*, const char* msg) {
	if (msg) log::info("database message", {{"text", msg}});
}

[[noreturn]] void throw_db(int rc, const std::string& what) {
	std::string text = what + ": " + db_strerror(rc);
	if (!last_db_message.empty()) {
		text += " (" + last_db_message + ")";
		last_db_message.clear();
	}
	throw DbError(text, rc);
}

void check(int rc, const char* what) {
	if (rc != 0) throw_db(rc, what);
}

bool is_retryable(int rc) { return rc == DB_LOCK_DEADLOCK || rc == DB_LOCK_NOTGRANTED; }

// ---- byte encodings

// ---- DBT helpers

// A DBT pointing at caller-owned bytes (for keys and data we pass in).
DBT input(std::string_view bytes) {
	DBT d;
	std::memset(&d, 0, sizeof d);
	d.data = const_cast<char*>(bytes.data());
	d.size = static_cast<u_int32_t>(bytes.size());
	return d;
}

}  // namespace

Cursor::Cursor(DB* db, DB_TXN* txn, u_int32_t flags) { check(db->cursor(db, txn, &c_, flags), "opening a cursor"); }

Cursor::~Cursor() {
	if (c_) c_->close(c_);
}

bool Cursor::get(Datum& key, Datum& data, u_int32_t flags) {
	int rc = c_->get(c_, &key.dbt, &data.dbt, flags);
	if (rc == DB_NOTFOUND) return false;
	check(rc, "reading with a cursor");
	return true;
}

void Cursor::del() {
	check(c_->del(c_, 0), "deleting with a cursor");
	note_write();
}

std::optional<std::string> get(DB* db, DB_TXN* txn, std::string_view key, u_int32_t flags) {
	DBT k = input(key);
	Datum data;
	int rc = db->get(db, txn, &k, &data.dbt, flags);
	if (rc == DB_NOTFOUND) return std::nullopt;
	check(rc, "reading a record");
	return data.str();
}

void put(DB* db, DB_TXN* txn, std::string_view key, std::string_view value, u_int32_t flags) {
	DBT k = input(key);
	DBT v = input(value);
	check(db->put(db, txn, &k, &v, flags), "writing a record");
	note_write();
}

bool del(DB* db, DB_TXN* txn, std::string_view key) {
	DBT k = input(key);
	int rc = db->del(db, txn, &k, 0);
	if (rc == DB_NOTFOUND) return false;
	check(rc, "deleting a record");
	note_write();
	return true;
}

namespace {

// ---- queue record encoding

enum QueueTag : uint8_t {
	tag_id = 1,
	tag_queued,
	tag_sender_account,
	tag_from,
	tag_to,
	tag_recipient_domain,
	tag_attempts,
	tag_next_attempt,
	tag_last_attempt,
	tag_last_error,
	tag_has_8bit,
	tag_smtputf8,
	tag_size,
	tag_message_id,
	tag_prefix,
	tag_message_file,
	tag_dsn_utf8,
	tag_data_offset,
	tag_dsn_ret,
	tag_envid,
	tag_notify,
	tag_orcpt,
	tag_requiretls,
};

constexpr uint8_t queue_record_version = 1;

void put_varint(std::string& out, uint64_t v) {
	while (v >= 0x80) {
		out.push_back(static_cast<char>((v & 0x7f) | 0x80));
		v >>= 7;
	}
	out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, uint64_t& v) {
	v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (in.empty()) return false;
		auto byte = static_cast<unsigned char>(in.front());
		in.remove_prefix(1);
		v |= uint64_t{byte & 0x7fu} << shift;
		if (!(byte & 0x80)) return true;
	}
	return false;
}

void put_field(std::string& out, uint8_t tag, std::string_view value) {
	out.push_back(static_cast<char>(tag));
	put_varint(out, value.size());
	out.append(value);
}

void put_int_field(std::string& out, uint8_t tag, int64_t value) {
	put_field(out, tag, be64(static_cast<uint64_t>(value)));
}

// ---- outgoing keys

void check_account_name(const std::string& account) {
	// The account ends at the 0x00 separator in the outgoing keys.
	if (account.empty() || account.find('\0') != std::string::npos)
		throw DbError("invalid account name for the store");
}

std::string history_prefix(const std::string& account) {
	std::string k = "h";
	k += account;
	k.push_back('\0');
	return k;
}

std::string history_key(const std::string& account, int64_t t, uint64_t seq) {
	std::string k = history_prefix(account);
	append_be64(k, time_order(t));
	append_be64(k, seq);
	return k;
}

std::string recipient_key(const std::string& account, const std::string& recipient) {
	std::string k = "r";
	k += account;
	k.push_back('\0');
	k += recipient;
	return k;
}

struct RecipientUse {
	int64_t first = 0, last = 0;
};

std::optional<RecipientUse> parse_recipient_use(const std::string& v) {
	if (v.size() != 16) return std::nullopt;
	return RecipientUse{time_from_order(read_be64(v)), time_from_order(read_be64(v, 8))};
}

}  // namespace

// ---- queue record serialization (public)

std::string serialize_queue_record(const QueueRecord& r) {
	std::string out;
	out.push_back(static_cast<char>(queue_record_version));
	put_int_field(out, tag_id, static_cast<int64_t>(r.id));
	put_int_field(out, tag_queued, r.queued);
	put_field(out, tag_sender_account, r.sender_account);
	put_field(out, tag_from, r.from);
	put_field(out, tag_to, r.to);
	put_field(out, tag_recipient_domain, r.recipient_domain);
	put_int_field(out, tag_attempts, r.attempts);
	put_int_field(out, tag_next_attempt, r.next_attempt);
	put_int_field(out, tag_last_attempt, r.last_attempt);
	put_field(out, tag_last_error, r.last_error);
	put_field(out, tag_has_8bit, r.has_8bit ? "\1" : std::string_view("\0", 1));
	put_field(out, tag_smtputf8, r.smtputf8 ? "\1" : std::string_view("\0", 1));
	put_int_field(out, tag_size, r.size);
	put_field(out, tag_message_id, r.message_id);
	put_field(out, tag_prefix, r.prefix);
	put_field(out, tag_message_file, r.message_file);
	if (!r.dsn_utf8.empty()) put_field(out, tag_dsn_utf8, r.dsn_utf8);
	if (r.data_offset != 0) put_int_field(out, tag_data_offset, r.data_offset);
	if (!r.dsn_ret.empty()) put_field(out, tag_dsn_ret, r.dsn_ret);
	if (!r.envid.empty()) put_field(out, tag_envid, r.envid);
	if (r.notify != 0) put_int_field(out, tag_notify, r.notify);
	if (!r.orcpt.empty()) put_field(out, tag_orcpt, r.orcpt);
	if (r.requiretls) put_field(out, tag_requiretls, "\1");
	return out;
}

std::optional<QueueRecord> parse_queue_record(std::string_view in) {
	if (in.empty() || static_cast<uint8_t>(in.front()) != queue_record_version) return std::nullopt;
	in.remove_prefix(1);
	QueueRecord r;
	while (!in.empty()) {
		auto tag = static_cast<uint8_t>(in.front());
		in.remove_prefix(1);
		uint64_t len = 0;
		if (!get_varint(in, len) || len > in.size()) return std::nullopt;
		std::string_view value = in.substr(0, len);
		in.remove_prefix(len);
		auto as_int = [&](auto& field) {
			if (value.size() != 8) return false;
			field = static_cast<std::remove_reference_t<decltype(field)>>(
			    static_cast<int64_t>(read_be64(value)));
			return true;
		};
		auto as_bool = [&](bool& field) {
			if (value.size() != 1 || static_cast<uint8_t>(value[0]) > 1) return false;
			field = value[0] == 1;
			return true;
		};
		bool ok = true;
		switch (tag) {
		case tag_id: {
			int64_t id = 0;
			ok = as_int(id);
			r.id = static_cast<uint64_t>(id);
			break;
		}
		case tag_queued: ok = as_int(r.queued); break;
		case tag_sender_account: r.sender_account = value; break;
		case tag_from: r.from = value; break;
		case tag_to: r.to = value; break;
		case tag_recipient_domain: r.recipient_domain = value; break;
		case tag_attempts: ok = as_int(r.attempts); break;
		case tag_next_attempt: ok = as_int(r.next_attempt); break;
		case tag_last_attempt: ok = as_int(r.last_attempt); break;
		case tag_last_error: r.last_error = value; break;
		case tag_has_8bit: ok = as_bool(r.has_8bit); break;
		case tag_smtputf8: ok = as_bool(r.smtputf8); break;
		case tag_size: ok = as_int(r.size); break;
		case tag_message_id: r.message_id = value; break;
		case tag_prefix: r.prefix = value; break;
		case tag_message_file: r.message_file = value; break;
		case tag_dsn_utf8: r.dsn_utf8 = value; break;
		case tag_data_offset: ok = as_int(r.data_offset) && r.data_offset >= 0; break;
		case tag_dsn_ret: r.dsn_ret = value; break;
		case tag_envid: r.envid = value; break;
		case tag_notify: ok = as_int(r.notify); break;
		case tag_orcpt: r.orcpt = value; break;
		case tag_requiretls: ok = as_bool(r.requiretls); break;
		default: break;  // a field from a newer tern: skip it
		}
		if (!ok) return std::nullopt;
	}
	return r;
}

// ---- the environment

namespace {

// DB_ENV->set_isalive (used by failchk and by threads waiting on a mutex):
// a process is alive while a signal could reach it. Our own threads live as
// long as the process (the worker pool never ends a thread mid-call).
int process_is_alive(DB_ENV*, pid_t pid, db_threadid_t, u_int32_t) {
	if (pid == ::getpid()) return 1;
	return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Room for the thread table failchk needs: every thread of every process
// that joins at the same time (ternd's workers, a few ternctl).
constexpr u_int32_t max_threads_in_env = 64;
// A panicked environment is reopened by the first thread that sees it; it
// waits this long for the other threads to leave the old handles.
constexpr auto reopen_wait = std::chrono::seconds(20);
// Less free space than this on the database's file system at a failed
// open is reported as a full disk: the region files and one log file
// alone take about 2 MiB.
constexpr uint64_t nearly_full_bytes = 4 * 1024 * 1024;

// Whether a process other than us has the environment open: each process
// that opened it with DB_REGISTER holds an fcntl lock on its slot of
// __db.register for as long as it stays (F_GETLK never reports our own).
// A registry it may not read (another user's) counts as someone inside,
// so that nobody's regions are removed from under them; any other failure
// to open it (none there, `dir` no directory) leaves the open that follows
// to report what is wrong.
bool other_process_registered(const std::string& dir) {
	UniqueFd fd(::open((dir + "/__db.register").c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd) return errno == EACCES || errno == EPERM;
	struct flock probe {};
	probe.l_type = F_WRLCK;
	probe.l_whence = SEEK_SET;
	probe.l_start = 0;
	probe.l_len = 0;
	if (::fcntl(fd.get(), F_GETLK, &probe) != 0) return true;
	return probe.l_type != F_UNLCK;
}

// The region files (__db.001 … and the registry) hold only shared-memory
// state; the tables and the log are the data. Removing them when no other
// process is inside is always safe and gets rid of scribbled ones.
void remove_region_files(const std::string& dir) {
	namespace fs = std::filesystem;
	std::error_code ec;
	for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
		std::string name = it->path().filename().string();
		if (name.rfind("__db.", 0) == 0) fs::remove(it->path(), ec);
	}
}

// A failed open on a full (or nearly full) file system names that cause:
// Berkeley DB itself often reports it as a region error or DB_RUNRECOVERY.
std::string explain_open_failure(const std::string& dir, int rc, const std::string& text) {
	struct statvfs fs {};
	bool full = rc == ENOSPC;
	uint64_t free_bytes = 0;
	if (::statvfs(dir.c_str(), &fs) == 0) {
		free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
		full = full || free_bytes < nearly_full_bytes;
	}
	if (!full) return text;
	return "no space left on device (ENOSPC): the file system of " + dir + " has " + std::to_string(free_bytes) +
	    " bytes free; free some space and start again (" + text + ")";
}

// Serializes the "am I alone → clean regions → open" sequence between
// processes that open the environment at the same moment.
class OpenLock {
public:
	// The lock goes with the descriptor (flock(2)).
	explicit OpenLock(const std::string& dir)
		: fd_(::open((dir + "/open.lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644)) {
		if (fd_) ::flock(fd_.get(), LOCK_EX);
	}

private:
	UniqueFd fd_;
};

}  // namespace

struct Env::Impl {
	std::string path;
	DB_ENV* env = nullptr;
	DB* passwords = nullptr;
	DB* outgoing = nullptr;
	DB* queue = nullptr;
	DB* deliveries = nullptr;
	DB* meta = nullptr;
	std::mutex other_tables_mu;
	std::map<std::string, DB*> other_tables;  // Env::in_table's, opened on first use
	DB* history = nullptr;
	DB* history_index = nullptr;
	// Every operation holds `gate` shared; a reopen after a panic holds it
	// exclusively, so no thread uses a handle while it is replaced.
	std::shared_timed_mutex gate;
	uint64_t generation = 0;                    // reopens so far; guarded by gate
	std::atomic<uint64_t> writes_committed{0};  // Env::writes_committed
	std::function<void(const char*)> fault;     // Env::set_fault_for_testing

	~Impl() { close(); }

	void close() {
		for (DB** db : {&passwords, &outgoing, &queue, &deliveries, &meta, &history, &history_index}) {
			if (*db) (*db)->close(*db, 0);
			*db = nullptr;
		}
		for (auto& [file, db] : other_tables) db->close(db, 0);
		other_tables.clear();
		if (env) {
			// A last checkpoint keeps the next open's recovery (if any) short
			// and lets the log shrink.
			env->txn_checkpoint(env, 0, 0, 0);
			env->close(env, 0);
			env = nullptr;
		}
	}

	DB* open_table(const char* file) {
		DB* db = nullptr;
		check(db_create(&db, env, 0), "creating a table handle");
		int rc = db->open(db, nullptr, file, nullptr, DB_BTREE, DB_AUTO_COMMIT | DB_CREATE | DB_THREAD, 0600);
		if (rc != 0) {
			db->close(db, 0);
			throw_db(rc, std::string("opening table ") + file);
		}
		return db;
	}

	// One environment handle with our settings; `flags` are env->open's.
	// Returns env->open's code; *out is set only on success.
	int open_handle(u_int32_t flags, DB_ENV** out) {
		DB_ENV* handle = nullptr;
		check(db_env_create(&handle, 0), "creating the environment handle");
		handle->set_errcall(handle, remember_db_message);
		handle->set_msgcall(handle, log_db_message);
		// Durable commits (no DB_TXN_NOSYNC / WRITE_NOSYNC): a 250 depends on them.
		check(handle->set_lk_detect(handle, DB_LOCK_DEFAULT), "setting deadlock detection");
		check(handle->log_set_config(handle, DB_LOG_AUTO_REMOVE, 1), "enabling log auto-removal");
		check(handle->set_lg_max(handle, 1024 * 1024), "setting the log file size");
		check(handle->set_cachesize(handle, 0, 4 * 1024 * 1024, 1), "setting the cache size");
		// failchk (at open and periodically) frees what a dead process held
		// and threads waiting on its mutexes stop waiting.
		check(handle->set_thread_count(handle, max_threads_in_env), "setting the thread count");
		check(handle->set_isalive(handle, process_is_alive), "setting the liveness check");
		int rc = handle->open(handle, path.c_str(), flags, 0600);
		if (rc != 0) {
			handle->close(handle, 0);
			return rc;
		}
		*out = handle;
		return 0;
	}

	// Opens the environment and the tables. When no other process is
	// inside, the region files are rebuilt from scratch and recovery runs
	// from the log first (a process that crashed, even one that scribbled a
	// region, leaves nothing behind); otherwise DB_REGISTER's own check
	// recovers when a registered process died.
	void open() {
		OpenLock serialize(path);
		if (!other_process_registered(path)) {
			remove_region_files(path);
			DB_ENV* alone = nullptr;
			int rc = open_handle(
			    DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, &alone);
			if (rc != 0) fail_open(rc, "recovering the database environment ");
			alone->close(alone, 0);
		}
		u_int32_t flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL | DB_THREAD |
		    DB_REGISTER | DB_RECOVER | DB_FAILCHK;
		int rc = open_handle(flags, &env);
		if (rc != 0) fail_open(rc, "opening the database environment ");
		try {
			passwords = open_table("passwords.db");
			outgoing = open_table("outgoing.db");
			queue = open_table("queue.db");
			deliveries = open_table("deliveries.db");
			meta = open_table("meta.db");
			history = open_table("history.db");
			history_index = open_table("history_index.db");
			run_transaction("checking the schema version", [&](DB_TXN* txn) {
				auto v = get(meta, txn, "schema", DB_RMW);
				if (!v) {
					put(meta, txn, "schema", be64(schema_version));
				} else if (v->size() != 8 || read_be64(*v) != schema_version) {
					throw DbError("database schema version is not " +
					              std::to_string(schema_version));
				}
			});
		} catch (const DbError& e) {
			close();
			throw DbError(explain_open_failure(path, e.code(), e.what()), e.code());
		} catch (...) {
			close();
			throw;
		}
	}

	[[noreturn]] void fail_open(int rc, const std::string& what) {
		try {
			throw_db(rc, what + path);
		} catch (const DbError& e) {
			throw DbError(explain_open_failure(path, rc, e.what()), rc);
		}
	}

	// After DB_RUNRECOVERY: closes every handle and opens again with
	// recovery, unless another thread already did since `seen_generation`.
	// Connections waiting meanwhile get their temporary error from the
	// failed call; the next call uses the new handles.
	// False when the wait for another thread's reopening ran out. Another
	// thread's reopening that failed left no environment: tried again here.
	bool reopen_after_panic(uint64_t seen_generation) {
		std::unique_lock lock(gate, std::defer_lock);
		if (!lock.try_lock_for(reopen_wait)) return false;  // a later call tries again
		if (generation != seen_generation && env) return true;
		close();
		++generation;
		open();
		return true;
	}

	// Runs `op` with the handles held; a panicked environment is reopened
	// (by this thread) and the call fails with DB_RUNRECOVERY for the
	// caller to answer with a temporary error.
	template <class Op>
	void guarded(Op&& op) {
		uint64_t seen;
		std::optional<DbError> panic;
		{
			std::shared_lock lock(gate);
			seen = generation;
			if (env) {
				try {
					op();
					return;
				} catch (const DbError& e) {
					if (e.code() != DB_RUNRECOVERY) throw;
					panic.emplace(e.what(), e.code());  // whether usable is said below
				}
			}
		}
		bool reopened = false;
		try {
			reopened = reopen_after_panic(seen);
		} catch (const DbError& e) {
			// Still broken (say, the disk is full): the next call tries again.
			throw DbError::unusable_environment("reopening the database environment after a failure: " +
			                                    std::string(e.what()));
		}
		if (!reopened) throw DbError::unusable_environment("the database environment is being reopened");
		if (panic) throw *panic;
		// The environment an earlier reopening could not open is open
		// again: this call is the first to use it, not one that failed.
		std::shared_lock lock(gate);
		if (!env) throw DbError::unusable_environment("the database environment could not be reopened");
		op();
	}

	// transaction() with the panic guard: what every public method uses.
	template <class Fn>
	void transaction(const char* what, Fn&& fn) {
		guarded([&] { run_transaction(what, fn); });
	}

	// Runs `fn(txn)` in a transaction and commits it (the commit fsyncs the
	// log). A deadlock victim is aborted and run again, a few times, after a
	// short growing pause.
	template <class Fn>
	void run_transaction(const char* what, Fn&& fn, u_int32_t commit_flags = 0) {
		if (fault) fault(what);
		for (int attempt = 0;; ++attempt) {
			DB_TXN* txn = nullptr;
			check(env->txn_begin(env, nullptr, &txn, 0), "beginning a transaction");
			const uint64_t writes_before = writes_on_this_thread;
			int rc = 0;
			try {
				fn(txn);
			} catch (const DbError& e) {
				txn->abort(txn);
				if (is_retryable(e.code()) && attempt < max_deadlock_retries) {
					std::this_thread::sleep_for(
					    std::chrono::milliseconds(1 << std::min(attempt, 6)));
					continue;
				}
				throw DbError(std::string(what) + ": " + e.what(), e.code());
			} catch (...) {
				txn->abort(txn);
				throw;
			}
			rc = txn->commit(txn, commit_flags);
			if (rc != 0) throw_db(rc, std::string(what) + ": commit");
			if (writes_on_this_thread != writes_before)
				writes_committed.fetch_add(1, std::memory_order_relaxed);
			return;
		}
	}

	// Reserves `count` consecutive values of the named counter; returns the
	// first. Holding the write lock on the counter until commit is what
	// makes ids unique across processes.
	uint64_t reserve(DB_TXN* txn, const char* counter, uint64_t count) {
		uint64_t last = 0;
		if (auto v = get(meta, txn, counter, DB_RMW)) {
			if (v->size() != 8) throw DbError(std::string("meta counter ") + counter + " is malformed");
			last = read_be64(*v);
		}
		put(meta, txn, counter, be64(last + count));
		return last + 1;
	}

	void record_outgoing(DB_TXN* txn, const std::string& account, const std::vector<std::string>& recipients,
	                     int64_t t) {
		check_account_name(account);
		if (recipients.empty()) return;
		uint64_t seq = reserve(txn, "seq.outgoing", recipients.size());
		for (const auto& rcpt : recipients) {
			put(outgoing, txn, history_key(account, t, seq++), rcpt);
			std::string rkey = recipient_key(account, rcpt);
			RecipientUse use{t, t};
			if (auto v = get(outgoing, txn, rkey, DB_RMW)) {
				if (auto old = parse_recipient_use(*v)) {
					use.first = std::min(old->first, t);
					use.last = std::max(old->last, t);
				}
			}
			std::string value;
			append_be64(value, time_order(use.first));
			append_be64(value, time_order(use.last));
			put(outgoing, txn, rkey, value);
			put(outgoing, txn, sent_domain_key(account, rcpt), be64(time_order(use.last)));
		}
		prune_history(txn, account, t - history_retention_s);
	}

	// Deletes this account's history rows at or before `cutoff`, a bounded
	// number per call so one write never grows into a long transaction.
	void prune_history(DB_TXN* txn, const std::string& account, int64_t cutoff) {
		std::string prefix = history_prefix(account);
		std::string end = history_key(account, cutoff, UINT64_MAX);
		Cursor cur(outgoing, txn);
		Datum key(prefix), data;
		int pruned = 0;
		for (bool ok = cur.get(key, data, DB_SET_RANGE | DB_RMW); ok && pruned < max_prune_per_write;
		     ok = cur.get(key, data, DB_NEXT | DB_RMW)) {
			if (key.view().substr(0, prefix.size()) != prefix || key.view() > std::string_view(end)) break;
			cur.del();
			++pruned;
		}
	}

	// Calls fn(time, recipient) for each history row strictly after `since`.
	template <class Fn>
	void scan_history(DB_TXN* txn, const std::string& account, int64_t since, Fn&& fn) {
		check_account_name(account);
		std::string prefix = history_prefix(account);
		Cursor cur(outgoing, txn);
		Datum key(history_key(account, since, UINT64_MAX)), data;
		for (bool ok = cur.get(key, data, DB_SET_RANGE); ok; ok = cur.get(key, data, DB_NEXT)) {
			std::string_view k = key.view();
			if (k.size() != prefix.size() + 16 || k.substr(0, prefix.size()) != prefix) break;
			int64_t t = time_from_order(read_be64(k, prefix.size()));
			if (t <= since) continue;
			fn(t, data.view());
		}
	}

	int64_t count_since(DB_TXN* txn, const std::string& account, int64_t since) {
		int64_t n = 0;
		scan_history(txn, account, since, [&](int64_t, std::string_view) { ++n; });
		return n;
	}

	int64_t first_time(DB_TXN* txn, const std::string& account, const std::vector<std::string>& recipients,
	                   int64_t since) {
		int64_t n = 0;
		// Recipients of the new message never sent to at all.
		for (const auto& rcpt : recipients)
			if (!get(outgoing, txn, recipient_key(account, rcpt))) ++n;
		// Recipients in the window with nothing logged before their first row
		// in it, i.e. whose first use ever lies inside the window.
		std::set<std::string> in_window;
		scan_history(txn, account, since, [&](int64_t, std::string_view rcpt) { in_window.emplace(rcpt); });
		for (const auto& rcpt : in_window) {
			auto v = get(outgoing, txn, recipient_key(account, rcpt));
			auto use = v ? parse_recipient_use(*v) : std::nullopt;
			if (!use || use->first > since) ++n;
		}
		return n;
	}

	QueueRecord decode_queue(std::string_view key, std::string_view value) {
		auto r = parse_queue_record(value);
		if (!r || key.size() != 8 || r->id != read_be64(key))
			throw DbError("queue record " + std::to_string(key.size() == 8 ? read_be64(key) : 0) +
			              " is malformed");
		return *r;
	}

	// For the scans over every record: one that does not decode (disk
	// damage, a newer tern's format) is logged and passed over, so that
	// it cannot stop the queue. Its file is then a link without a record
	// to the rebuild (start, SIGUSR2, ternctl queue rebuild), which makes
	// a new record from the file's header.
	std::optional<QueueRecord> decode_listed_queue(std::string_view key, std::string_view value) {
		std::string error;
		auto record = try_decode_queue(key, value, error);
		if (!record) log::error("queue record passed over", {{"error", error}});
		return record;
	}
	// decode_queue, with what is wrong in `error` instead of an exception.
	std::optional<QueueRecord> try_decode_queue(std::string_view key, std::string_view value, std::string& error) {
		try {
			return decode_queue(key, value);
		} catch (const DbError& e) {
			error = e.what();
			return std::nullopt;
		}
	}
};

Env::Env(const std::string& data_dir) : impl_(std::make_unique<Impl>()) {
	namespace fs = std::filesystem;
	impl_->path = (fs::path(data_dir) / "db").string();
	std::error_code ec;
	fs::create_directories(data_dir, ec);
	if (::mkdir(impl_->path.c_str(), 0700) != 0 && errno != EEXIST)
		throw DbError(
		    explain_open_failure(impl_->path, errno, "creating " + impl_->path + ": " + std::strerror(errno)));
	impl_->open();
}

Env::~Env() = default;

void Env::with_tables(const char* what, bool durable, const std::function<void(const Tables&)>& fn) {
	impl_->guarded([&] {
		impl_->run_transaction(
		    what,
		    [&](DB_TXN* txn) {
			    fn(Tables{txn, impl_->history, impl_->history_index, impl_->outgoing});
		    },
		    durable ? 0 : DB_TXN_NOSYNC);
	});
}

const std::string& Env::path() const { return impl_->path; }

DbError DbError::unusable_environment(const std::string& what) {
	DbError e(what, DB_RUNRECOVERY);
	e.environment_unusable_ = true;
	return e;
}

void Env::set_fault_for_testing(std::function<void(const char* what)> fault) { impl_->fault = std::move(fault); }

uint64_t Env::writes_committed() const { return impl_->writes_committed.load(std::memory_order_relaxed); }

void Env::checkpoint(bool force) {
	impl_->guarded([&] {
		// 1 MiB of log or a minute since the last checkpoint, unless forced.
		int rc = impl_->env->txn_checkpoint(impl_->env, force ? 0 : 1024, force ? 0 : 1, force ? DB_FORCE : 0);
		if (rc != 0) throw_db(rc, "checkpoint");
	});
}

void Env::check_dead_processes() {
	impl_->guarded([&] {
		int rc = impl_->env->failchk(impl_->env, 0);
		if (rc != 0) throw_db(rc, "checking for processes that died in the environment");
	});
}

void Env::in_table(const std::string& file, const std::function<void(TableTxn&)>& fn) {
	impl_->guarded([&] {
		DB* table;
		{
			std::lock_guard lock(impl_->other_tables_mu);
			auto it = impl_->other_tables.find(file);
			if (it == impl_->other_tables.end())
				it = impl_->other_tables.emplace(file, impl_->open_table(file.c_str())).first;
			table = it->second;
		}
		impl_->run_transaction(file.c_str(), [&](DB_TXN* txn) {
			TableTxn t(table, txn);
			fn(t);
		});
	});
}

std::optional<std::string> TableTxn::get(std::string_view key, bool for_update) {
	return store::get(static_cast<DB*>(table_), static_cast<DB_TXN*>(txn_), key, for_update ? DB_RMW : 0);
}

void TableTxn::put(std::string_view key, std::string_view value) {
	store::put(static_cast<DB*>(table_), static_cast<DB_TXN*>(txn_), key, value);
}

bool TableTxn::del(std::string_view key) {
	return store::del(static_cast<DB*>(table_), static_cast<DB_TXN*>(txn_), key);
}

void TableTxn::scan(std::string_view prefix, std::string_view from,
                    const std::function<bool(std::string_view, std::string_view)>& fn) {
	Cursor cur(static_cast<DB*>(table_), static_cast<DB_TXN*>(txn_));
	Datum key(from.empty() ? prefix : from), data;
	for (bool ok = cur.get(key, data, DB_SET_RANGE); ok; ok = cur.get(key, data, DB_NEXT)) {
		if (key.view().substr(0, prefix.size()) != prefix) break;
		if (!fn(key.view(), data.view())) break;
	}
}

// ---- passwords

void Env::set_password_secrets(const std::string& account, const std::string& blob) {
	impl_->transaction("storing password secrets", [&](DB_TXN* txn) { put(impl_->passwords, txn, account, blob); });
}

std::optional<std::string> Env::password_secrets(const std::string& account) {
	std::optional<std::string> out;
	impl_->transaction("reading password secrets", [&](DB_TXN* txn) { out = get(impl_->passwords, txn, account); });
	return out;
}

bool Env::remove_password_secrets(const std::string& account) {
	bool removed = false;
	impl_->transaction("removing password secrets",
	                   [&](DB_TXN* txn) { removed = del(impl_->passwords, txn, account); });
	return removed;
}

// ---- outgoing history

void Env::record_outgoing(const std::string& account, const std::vector<std::string>& recipients, int64_t unix_time) {
	impl_->transaction("recording outgoing recipients",
	                   [&](DB_TXN* txn) { impl_->record_outgoing(txn, account, recipients, unix_time); });
}

int64_t Env::count_outgoing_since(const std::string& account, int64_t since) {
	int64_t n = 0;
	impl_->transaction("counting outgoing messages",
	                   [&](DB_TXN* txn) { n = impl_->count_since(txn, account, since); });
	return n;
}

int64_t Env::count_first_time_recipients(const std::string& account, const std::vector<std::string>& recipients,
                                         int64_t since) {
	check_account_name(account);
	int64_t n = 0;
	impl_->transaction("counting first-time recipients",
	                   [&](DB_TXN* txn) { n = impl_->first_time(txn, account, recipients, since); });
	return n;
}

SendLimitVerdict Env::check_send_limits(const std::string& account, const std::vector<std::string>& recipients,
                                        int64_t now, int64_t max_messages, int64_t max_first_time) {
	check_account_name(account);
	SendLimitVerdict verdict;
	int64_t since = now - send_limit_window_s;
	auto incoming = static_cast<int64_t>(recipients.size());
	impl_->transaction("checking send limits", [&](DB_TXN* txn) {
		verdict = SendLimitVerdict{};
		verdict.messages = impl_->count_since(txn, account, since);
		if (verdict.messages + incoming > max_messages) {
			verdict.messages_reached = true;
			return;
		}
		// The model evaluates first-time recipients only once enough messages
		// could reach that limit.
		if (verdict.messages + incoming < max_first_time) return;
		verdict.first_time = impl_->first_time(txn, account, recipients, since);
		verdict.first_time_reached = verdict.first_time > max_first_time;
	});
	return verdict;
}

// ---- queue

uint64_t Env::queue_add(QueueRecord& record) {
	std::vector<QueueRecord> one{record};
	queue_add_many(one);
	record.id = one[0].id;
	return record.id;
}

void Env::queue_add_many(std::vector<QueueRecord>& records, const OutgoingLog* outgoing) {
	if (records.empty() && !outgoing) return;
	std::vector<uint64_t> ids(records.size());
	impl_->transaction("adding to the queue", [&](DB_TXN* txn) {
		uint64_t id = records.empty() ? 0 : impl_->reserve(txn, "seq.queue", records.size());
		for (size_t i = 0; i < records.size(); ++i) {
			ids[i] = id++;
			QueueRecord copy = records[i];
			copy.id = ids[i];
			put(impl_->queue, txn, be64(ids[i]), serialize_queue_record(copy), DB_NOOVERWRITE);
		}
		if (outgoing) impl_->record_outgoing(txn, outgoing->account, outgoing->recipients, outgoing->time);
	});
	for (size_t i = 0; i < records.size(); ++i) records[i].id = ids[i];
}

std::optional<QueueRecord> Env::queue_get(uint64_t id) {
	std::optional<QueueRecord> out;
	impl_->transaction("reading a queue record", [&](DB_TXN* txn) {
		std::string key = be64(id);
		auto v = get(impl_->queue, txn, key);
		out = v ? std::optional(impl_->decode_queue(key, *v)) : std::nullopt;
	});
	return out;
}

void Env::queue_scan(const std::function<void()>& restart, const std::function<void(const QueueRecord&)>& visit) {
	impl_->transaction("listing the queue", [&](DB_TXN* txn) {
		restart();
		Cursor cur(impl_->queue, txn);
		Datum key, data;
		for (bool ok = cur.get(key, data, DB_FIRST); ok; ok = cur.get(key, data, DB_NEXT))
			if (auto record = impl_->decode_listed_queue(key.view(), data.view())) visit(*record);
	});
}

size_t Env::queue_remove_undecodable() {
	// Found by a read (each page let go once read), so that enqueues do not
	// wait for a walk over the whole queue at every rebuild; written only
	// when there is something to remove.
	std::vector<std::string> undecodable;
	impl_->transaction("finding queue records that do not decode", [&](DB_TXN* txn) {
		undecodable.clear();
		Cursor cur(impl_->queue, txn, DB_READ_COMMITTED);
		Datum key, data;
		std::string error;
		for (bool ok = cur.get(key, data, DB_FIRST); ok; ok = cur.get(key, data, DB_NEXT))
			if (!impl_->try_decode_queue(key.view(), data.view(), error)) undecodable.push_back(key.str());
	});
	if (undecodable.empty()) return 0;
	size_t removed = 0;
	impl_->transaction("removing queue records that do not decode", [&](DB_TXN* txn) {
		removed = 0;
		for (const std::string& key : undecodable) {
			auto value = get(impl_->queue, txn, key, DB_RMW);
			std::string error;
			// Rewritten meanwhile: it stays.
			if (!value || impl_->try_decode_queue(key, *value, error)) continue;
			log::error("queue record removed", {{"error", error}});
			del(impl_->queue, txn, key);
			++removed;
		}
	});
	return removed;
}

std::vector<QueueRecord> Env::queue_list() {
	std::vector<QueueRecord> out;
	queue_scan([&] { out.clear(); }, [&](const QueueRecord& record) { out.push_back(record); });
	return out;
}

bool Env::queue_update(const QueueRecord& record) {
	bool found = false;
	impl_->transaction("updating a queue record", [&](DB_TXN* txn) {
		std::string key = be64(record.id);
		found = get(impl_->queue, txn, key, DB_RMW).has_value();
		if (found) put(impl_->queue, txn, key, serialize_queue_record(record));
	});
	return found;
}

bool Env::queue_remove(uint64_t id) {
	bool removed = false;
	impl_->transaction("removing a queue record", [&](DB_TXN* txn) { removed = del(impl_->queue, txn, be64(id)); });
	return removed;
}

}  // namespace tern::store
