// The junk filter's word counts in the database (src/store/junk_counts):
// trained through the store on a generated corpus it separates a held-out
// set; training and untraining round-trip; a flipped mark moves the words.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <random>

#include "server/inbound_ctl.h"
#include "store/junk_counts.h"
#include "util/unique_fd.h"
#include "unit/files.h"
#include "unit/junk_corpus.h"

using namespace tern;
using tern::testing::generate_corpus_message;
using tern::testing::TempDir;
using tern::testing::write_file;

TEST_CASE("junk counts: a classifier trained through the store separates a held-out set") {
	TempDir dir;
	store::Env env(dir.path);
	store::JunkCountsTable counts(env, "alice");
	std::mt19937 rng(4242);
	for (int i = 0; i < 60; ++i) {
		counts.train(inbound::message_words(generate_corpus_message(rng, false, 30)), store::JunkMark::ham,
		             store::Training::add);
		counts.train(inbound::message_words(generate_corpus_message(rng, true, 30)), store::JunkMark::junk,
		             store::Training::add);
	}
	CHECK(counts.totals().ham == 60);
	CHECK(counts.totals().spam == 60);
	int right = 0, total = 0;
	for (int i = 0; i < 40; ++i) {
		for (bool junk : {false, true}) {
			auto r = inbound::classify_words(inbound::message_words(generate_corpus_message(rng, junk, 30)),
			                                 counts);
			CHECK_FALSE(r.untrained);
			right += (r.probability > 0.5) == junk ? 1 : 0;
			++total;
		}
	}
	CHECK(right >= total * 95 / 100);

	SUBCASE("another account's counts are separate") {
		store::JunkCountsTable bob(env, "bob");
		CHECK(bob.totals().ham == 0);
		CHECK(bob.words({"cheap", "meeting"}).empty());
	}
}

TEST_CASE("junk counts: train then untrain round-trips, a flipped mark moves the words") {
	TempDir dir;
	store::Env env(dir.path);
	store::JunkCountsTable counts(env, "alice");
	std::set<std::string> words{"cheap", "pills", "cheap pills"};
	counts.train(words, store::JunkMark::junk, store::Training::add);
	counts.train({"meeting", "cheap"}, store::JunkMark::ham, store::Training::add);
	auto w = counts.words({"cheap", "pills", "meeting", "absent"});
	CHECK(w.size() == 3);
	CHECK(w["cheap"].spam == 1);
	CHECK(w["cheap"].ham == 1);
	CHECK(counts.totals().spam == 1);
	CHECK(counts.totals().ham == 1);

	// The user says the junk message was not junk after all.
	counts.retrain(words, store::JunkMark::junk, store::JunkMark::ham);
	w = counts.words({"cheap", "pills"});
	CHECK(w["cheap"].spam == 0);
	CHECK(w["cheap"].ham == 2);
	CHECK(w["pills"].ham == 1);
	CHECK(counts.totals().spam == 0);
	CHECK(counts.totals().ham == 2);

	// Untraining everything leaves nothing behind, and never goes below zero.
	counts.train(words, store::JunkMark::ham, store::Training::remove);
	counts.train({"meeting", "cheap"}, store::JunkMark::ham, store::Training::remove);
	counts.train({"meeting"}, store::JunkMark::ham, store::Training::remove);
	CHECK(counts.words({"cheap", "pills", "cheap pills", "meeting"}).empty());
	CHECK(counts.totals().ham == 0);
	CHECK(counts.totals().spam == 0);
}

TEST_CASE("junk counts: the verdict's input for an account's message file") {
	TempDir dir;
	store::Env env(dir.path);
	auto cfg = config::Config::load_text(R"({"hostname": "mx.example.org", "data_dir": ")" + dir.path +
	                                         R"(", "domains": {"example.org": {}},
	        "accounts": {"alice": {"domain": "example.org", "junk_filter": {"threshold": 0.9}},
	                     "bob": {"domain": "example.org"}}})",
	                                     "test.json", dir.path);
	std::string file = dir.path + "/msg";
	write_file(file, "Subject: cheap pills\r\n\r\ncheap pills winner lottery\r\n");
	CHECK_FALSE(store::junk_probability(&env, cfg->accounts.at("bob"), file));

	auto untrained = store::junk_probability(&env, cfg->accounts.at("alice"), file);
	REQUIRE(untrained);
	CHECK(untrained->probability == 0.5);
	CHECK(untrained->threshold == 0.9);
	CHECK(untrained->jitter >= -0.05);
	CHECK(untrained->jitter < 0.05);

	store::JunkCountsTable counts(env, "alice");
	std::mt19937 rng(7);
	for (int i = 0; i < 20; ++i) {
		counts.train(inbound::message_words(generate_corpus_message(rng, false, 30)), store::JunkMark::ham,
		             store::Training::add);
		counts.train(inbound::message_words(generate_corpus_message(rng, true, 30)), store::JunkMark::junk,
		             store::Training::add);
	}
	uint64_t junk_before = store::junk_verdict_counters().junk;
	auto answer = store::junk_probability(&env, cfg->accounts.at("alice"), file);
	REQUIRE(answer);
	CHECK(store::junk_verdict_counters().junk == junk_before + 1);  // tern_junkfilter_verdicts_total
	CHECK_FALSE(answer->open_error);
	CHECK_FALSE(answer->classify_error);
	CHECK(answer->probability > 0.95);

	auto missing = store::junk_probability(&env, cfg->accounts.at("alice"), dir.path + "/gone");
	REQUIRE(missing);
	CHECK(missing->classify_error);

	// Through an open descriptor (a spool file in reuse, store/files.h
	// ReadableFile): the path is not opened, so it may be gone.
	tern::UniqueFd open_file(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
	REQUIRE(open_file);
	REQUIRE(::unlink(file.c_str()) == 0);
	auto through_fd = store::junk_probability(&env, cfg->accounts.at("alice"), {file, open_file.get()});
	REQUIRE(through_fd);
	CHECK_FALSE(through_fd->classify_error);
	CHECK(through_fd->probability == answer->probability);
	write_file(file, "Subject: cheap pills\r\n\r\ncheap pills winner lottery\r\n");
	auto no_db = store::junk_probability(nullptr, cfg->accounts.at("alice"), file);
	REQUIRE(no_db);
	CHECK(no_db->open_error);
}

TEST_CASE("junk counts: a message's words cross the control socket as one argument and back") {
	std::set<std::string> words{"cheap", "cheap pills",
	                            "gr\xc3\xbc\xc3\x9f"
	                            "e",
	                            "pills"};
	std::string arg = server::junk_words_arg(words);
	CHECK(arg ==
	      "cheap\ncheap pills\ngr\xc3\xbc\xc3\x9f"
	      "e\npills");
	auto request = control::format_request({"junk", "check", "alice", arg});
	auto parsed = control::parse_request(request.substr(0, request.size() - 1));
	REQUIRE(parsed);
	CHECK(server::junk_words_from_arg((*parsed)[3]) == words);
	CHECK(server::junk_words_from_arg("").empty());
}

TEST_CASE("junk counts: the scanner's mark changes train, flip and untrain a stored message") {
	TempDir dir;
	store::Env env(dir.path);
	std::string file = dir.path + "/1700000000.abc.host,S=80:2,S";
	write_file(file, "Subject: cheap pills\r\n\r\nwinner lottery\r\n");
	store::JunkCountsTable counts(env, "alice");
	using store::JunkMark;
	store::train_junk_mark_change(env, "alice", file, std::nullopt, JunkMark::junk);  // marked $Junk
	CHECK(counts.totals().spam == 1);
	CHECK(counts.words({"lottery"}).at("lottery").spam == 1);
	store::train_junk_mark_change(env, "alice", file, JunkMark::junk, JunkMark::junk);  // no change
	CHECK(counts.totals().spam == 1);
	store::train_junk_mark_change(env, "alice", file, JunkMark::junk, JunkMark::ham);  // moved out of Junk
	CHECK(counts.totals().spam == 0);
	CHECK(counts.totals().ham == 1);
	CHECK(counts.words({"cheap pills"}).at("cheap pills").ham == 1);
	store::train_junk_mark_change(env, "alice", file, JunkMark::ham, std::nullopt);  // $NotJunk taken off
	CHECK(counts.totals().ham == 0);
	CHECK(counts.words({"cheap", "lottery", "cheap pills"}).empty());
	CHECK_THROWS(store::train_junk_mark_change(env, "alice", dir.path + "/gone", std::nullopt, JunkMark::ham));
}

TEST_CASE("store files: the head of a file by path and through a descriptor") {
	TempDir dir;
	std::string file = dir.path + "/msg";
	const std::string text(70000, 'x');
	write_file(file, "Subject: s\r\n\r\n" + text);
	tern::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
	REQUIRE(fd);
	for (size_t limit : {size_t{5}, size_t{65536}, size_t{1} << 20}) {
		std::string by_path = store::read_file_head(file, limit);
		CHECK(by_path.size() == std::min(limit, text.size() + 14));
		CHECK(store::read_file_head({file, fd.get()}, limit) == by_path);
	}
	REQUIRE(::unlink(file.c_str()) == 0);
	CHECK(store::read_file_head({file, fd.get()}, 12) == "Subject: s\r\n");
	CHECK_THROWS(store::read_file_head(file, 12));
}

TEST_CASE("store files: a small file under a large limit costs a buffer of its own size") {
	// The junk filter reads its counts under a limit of 8 MiB for every
	// message: a buffer of the limit's size, zero-filled, was a page fault
	// per 4 KiB each time. A file that grew after it was measured is read
	// on, up to the limit.
	TempDir dir;
	std::string file = dir.path + "/counts";
	write_file(file, std::string(3000, 'c'));
	std::string head = store::read_file_head(file, size_t{8} << 20);
	CHECK(head == std::string(3000, 'c'));
	CHECK(head.capacity() < 65536);
	tern::UniqueFd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC));
	REQUIRE(fd);
	head = store::read_file_head({file, fd.get()}, size_t{8} << 20);
	CHECK(head.capacity() < 65536);
	// Larger than the first buffer: read whole, up to the limit.
	write_file(file, std::string(100000, 'd'));
	CHECK(store::read_file_head(file, size_t{8} << 20) == std::string(100000, 'd'));
	CHECK(store::read_file_head(file, 70000) == std::string(70000, 'd'));
}
