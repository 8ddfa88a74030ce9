// The record calls over Berkeley DB handles that the store's files share
// (store/db.cpp's tables, store/history.cpp's), with the DBT and cursor
// wrappers under them: one place where a put or a delete counts toward
// Env::writes_committed, so that no writer can forget to; and the
// big-endian numbers their keys are made of. Inside the store only (its
// unit tests write a damaged record by hand with be64); blocking, as every
// store call.
#pragma once
#include <db.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <string_view>

namespace tern::store {

// Numbers in keys and values as 8 big-endian bytes: byte order is number
// order, so a cursor walks ids and times in order.
inline void append_be64(std::string& out, uint64_t v) {
	for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
inline std::string be64(uint64_t v) {
	std::string s;
	append_be64(s, v);
	return s;
}
// The number at `at`; the caller has checked that 8 bytes are there.
inline uint64_t read_be64(std::string_view s, size_t at = 0) {
	uint64_t v = 0;
	for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
	return v;
}
// A signed time as an unsigned number of the same order (the sign bit
// flipped), for keys that sort by time.
inline uint64_t time_order(int64_t t) { return static_cast<uint64_t>(t) ^ (uint64_t{1} << 63); }
inline int64_t time_from_order(uint64_t v) { return static_cast<int64_t>(v ^ (uint64_t{1} << 63)); }

// A DBT the library fills: DB_DBT_REALLOC is required for free-threaded
// handles (DB_THREAD), and the buffer is ours to free.
struct Datum {
	DBT dbt;
	Datum() {
		std::memset(&dbt, 0, sizeof dbt);
		dbt.flags = DB_DBT_REALLOC;
	}
	explicit Datum(std::string_view initial) : Datum() { set(initial); }
	~Datum() { std::free(dbt.data); }
	Datum(const Datum&) = delete;
	Datum& operator=(const Datum&) = delete;

	// A copy of `bytes` (a cursor's position for DB_SET_RANGE).
	void set(std::string_view bytes) {
		void* p = std::realloc(dbt.data, bytes.size() ? bytes.size() : 1);
		if (!p) throw std::bad_alloc();
		dbt.data = p;
		if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
		dbt.size = static_cast<u_int32_t>(bytes.size());
	}
	std::string_view view() const { return {static_cast<const char*>(dbt.data), dbt.size}; }
	std::string str() const { return std::string(view()); }
};

// A cursor over one table in a transaction; closed when it goes. Throws
// DbError on a failure.
class Cursor {
public:
	// `flags` DB_READ_COMMITTED lets each page go once read (long walks).
	Cursor(DB* db, DB_TXN* txn, u_int32_t flags = 0);
	~Cursor();
	Cursor(const Cursor&) = delete;
	Cursor& operator=(const Cursor&) = delete;
	// DB_SET_RANGE / DB_NEXT / …; false at the end.
	bool get(Datum& key, Datum& data, u_int32_t flags);
	// Deletes the record at the cursor (a write, counted as put and del are).
	void del();

private:
	DBC* c_ = nullptr;
};

// nullopt when the key is absent; throws DbError on a failure.
std::optional<std::string> get(DB* db, DB_TXN* txn, std::string_view key, u_int32_t flags = 0);
void put(DB* db, DB_TXN* txn, std::string_view key, std::string_view value, u_int32_t flags = 0);
// false when the key was absent.
bool del(DB* db, DB_TXN* txn, std::string_view key);

}  // namespace tern::store
