// The record calls over Berkeley DB handles that the store's files share
// (store/db.cpp's tables, store/history.cpp's): one place where a put or a
// delete counts toward Env::writes_committed, so that no writer can forget
// to. Inside the store only; blocking, as every store call.
#pragma once
#include <db.h>

#include <optional>
#include <string>
#include <string_view>

namespace tern::store {

// nullopt when the key is absent; throws DbError on a failure.
std::optional<std::string> get(DB* db, DB_TXN* txn, std::string_view key, u_int32_t flags = 0);
void put(DB* db, DB_TXN* txn, std::string_view key, std::string_view value, u_int32_t flags = 0);
// false when the key was absent.
bool del(DB* db, DB_TXN* txn, std::string_view key);

}  // namespace tern::store
