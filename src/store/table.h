// A transaction over one table of the Berkeley DB environment, for the
// store files that keep their own tables (junk_counts, reports) without
// widening Env: Env::in_table opens the table and runs the transaction,
// this is what the caller's function works with. Keys and values are
// bytes; tables are B-trees, so keys sort bytewise and prefix scans are
// range scans. Blocking, like every Env call: worker threads or ternctl.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tern::store {

class TableTxn {
public:
	// Opaque handles of the table (DB*) and the transaction (DB_TXN*).
	TableTxn(void* table, void* txn) : table_(table), txn_(txn) {}

	// With for_update, the record stays write-locked until the commit, so
	// a read-modify-write cannot race another writer.
	std::optional<std::string> get(std::string_view key, bool for_update = false);
	void put(std::string_view key, std::string_view value);
	bool del(std::string_view key);  // false when absent
	// fn(key, value) for each record whose key starts with `prefix`, from
	// the first key ≥ `from` (empty: the prefix itself) in key order, while
	// fn returns true.
	void scan(std::string_view prefix, std::string_view from,
	          const std::function<bool(std::string_view key, std::string_view value)>& fn);

private:
	void* table_;
	void* txn_;
};

}  // namespace tern::store
