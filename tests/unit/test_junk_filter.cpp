// The Bayesian junk filter: words of a message, and separation of a
// generated corpus after training (a held-out set it never saw).
#include <doctest/doctest.h>

#include <random>

#include "inbound/junk_filter.h"
#include "unit/junk_corpus.h"

using namespace tern::inbound;

namespace {

std::string generate(std::mt19937& rng, bool junk, int n) {
	return tern::testing::generate_corpus_message(rng, junk, n);
}

}  // namespace

TEST_CASE("junk filter: words of the subject and text parts, with pairs") {
	std::string msg =
	    "Subject: =?UTF-8?Q?Caf=C3=A9_Offer?= now\r\n"
	    "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Gr=FC=DFe an ALLE, ok x\r\n"
	    "--b\r\nContent-Type: text/html\r\n\r\n<p class=\"big\">Limited <b>deal</b></p>\r\n"
	    "--b\r\nContent-Type: image/png\r\n\r\nnotwords\r\n--b--\r\n";
	auto w = message_words(msg);
	CHECK(w.count("caf\xc3\xa9"));
	CHECK(w.count("offer"));
	CHECK(w.count("now"));
	CHECK(w.count("caf\xc3\xa9 offer"));
	CHECK(
	    w.count("gr\xc3\xbc\xc3\x9f"
	            "e"));
	CHECK(w.count("alle"));
	CHECK_FALSE(w.count("ok"));  // too short
	CHECK(w.count("limited"));
	CHECK(w.count("deal"));
	CHECK_FALSE(w.count("class"));     // inside a tag
	CHECK_FALSE(w.count("notwords"));  // not a text part
}

TEST_CASE("junk filter: a huge Subject counts against the text budget") {
	// 8 MiB of distinct words in one header field: only the first 16 KiB
	// of the field are read.
	std::string subject;
	for (int i = 0; subject.size() < 8 * 1024 * 1024; ++i) subject += " w" + std::to_string(i);
	auto words = message_words("Subject:" + subject + "\r\n\r\nbody text here\r\n");
	CHECK(words.count("w100") == 1);
	CHECK(words.count("w1000000") == 0);
	CHECK(words.size() < 2 * 16 * 1024 / 4);  // words and pairs of at least 4 bytes each
	CHECK(words.count("body") == 1);
}

TEST_CASE("junk filter: untrained says nothing") {
	MemoryJunkCounts counts;
	auto r = classify_words({"anything"}, counts);
	CHECK(r.untrained);
	CHECK(r.probability == 0.5);
}

TEST_CASE("junk filter: trained on a generated corpus, it separates a held-out set") {
	std::mt19937 rng(12345);
	MemoryJunkCounts counts;
	for (int i = 0; i < 200; ++i) {
		counts.train(message_words(generate(rng, false, 40)), false);
		counts.train(message_words(generate(rng, true, 40)), true);
	}
	int right = 0, total = 0;
	for (int i = 0; i < 100; ++i) {
		for (bool junk : {false, true}) {
			auto r = classify_words(message_words(generate(rng, junk, 40)), counts);
			CHECK_FALSE(r.untrained);
			bool said_junk = r.probability > 0.5;
			right += said_junk == junk ? 1 : 0;
			++total;
		}
	}
	CHECK(right >= total * 95 / 100);
	auto r = classify_words(message_words(generate(rng, true, 40)), counts);
	CHECK(r.probability > 0.95);
	CHECK_FALSE(r.spam_words.empty());
	CHECK(r.spam_words.size() <= 10);
	CHECK(r.spam_words.front().spam_probability >= r.spam_words.back().spam_probability);
	r = classify_words(message_words(generate(rng, false, 40)), counts);
	CHECK(r.probability < 0.05);
	SUBCASE("common words alone say little") {
		auto neutral = classify_words({"hello", "the", "your", "today"}, counts);
		CHECK(neutral.probability > 0.2);
		CHECK(neutral.probability < 0.8);
	}
}

TEST_CASE("junk filter: rare words are ignored, certainty is capped") {
	MemoryJunkCounts counts;
	counts.train({"common", "spamword"}, true);
	counts.train({"common", "spamword"}, true);
	counts.train({"common", "spamword"}, true);
	counts.train({"common", "rare"}, false);
	auto r = classify_words({"rare"}, counts);
	CHECK(r.probability == 0.5);  // seen once: ignored
	r = classify_words({"spamword"}, counts);
	REQUIRE(r.spam_words.size() == 1);
	CHECK(r.spam_words[0].spam_probability == doctest::Approx(0.99));
}
