// Fuzzes SPF evaluation (mailauth/spf.h, RFC 7208) over a CannedResolver
// whose zone is partly fuzzed: the SPF records of the checked domain and of
// the names it may include/redirect to, plus a fixed zone of A/AAAA/MX/PTR
// records those mechanisms can hit. Checks that check_host() and Verify run
// their callback exactly once (the canned resolver answers synchronously),
// and exercises macro expansion directly.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "fuzz/data_provider.h"
#include "fuzz/fuzz_common.h"
#include "mailauth/resolver.h"
#include "mailauth/spf.h"
#include "util/ipaddr.h"

using namespace tern;
using namespace tern::mailauth;

namespace {

IpAddr fuzzed_ip(fuzz::DataProvider& fdp) {
	char text[64];
	if (fdp.ConsumeBool()) {
		// Mostly addresses the fixed zone knows, so ip4/a/mx can match.
		static const char* known[] = {"192.0.2.1", "192.0.2.25", "198.51.100.7", "10.0.0.1"};
		if (fdp.ConsumeBool()) return *IpAddr::parse(known[fdp.ConsumeIntegralInRange<int>(0, 3)]);
		std::snprintf(text, sizeof(text), "%u.%u.%u.%u", fdp.ConsumeIntegral<uint8_t>(),
		              fdp.ConsumeIntegral<uint8_t>(), fdp.ConsumeIntegral<uint8_t>(),
		              fdp.ConsumeIntegral<uint8_t>());
	} else {
		if (fdp.ConsumeBool()) return *IpAddr::parse("2001:db8::25");
		std::snprintf(text, sizeof(text), "%x:%x:%x:%x:%x:%x:%x:%x", fdp.ConsumeIntegral<uint16_t>(),
		              fdp.ConsumeIntegral<uint16_t>(), fdp.ConsumeIntegral<uint16_t>(),
		              fdp.ConsumeIntegral<uint16_t>(), fdp.ConsumeIntegral<uint16_t>(),
		              fdp.ConsumeIntegral<uint16_t>(), fdp.ConsumeIntegral<uint16_t>(),
		              fdp.ConsumeIntegral<uint16_t>());
	}
	auto ip = IpAddr::parse(text);
	FUZZ_CHECK(ip.has_value());
	return *ip;
}

// An SPF record: fuzzed text, usually behind "v=spf1 " so evaluation goes
// past the version check.
std::string fuzzed_record(fuzz::DataProvider& fdp) {
	bool prefix = fdp.ConsumeProbability<float>() < 0.9f;
	std::string body = fdp.ConsumeRandomLengthString(400);
	return prefix ? "v=spf1 " + body : body;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	fuzz::DataProvider fdp(data, size);
	CannedResolver resolver;

	// Fixed zone.
	resolver.set_records("mail.example.com", RrType::A, {"192.0.2.25"});
	resolver.set_records("mail.example.com", RrType::AAAA, {"2001:db8::25"});
	resolver.set_records("example.com", RrType::A, {"192.0.2.1"});
	resolver.set_mx("example.com", {{10, "mail.example.com"}, {20, "mx2.example.com"}});
	resolver.set_records("mx2.example.com", RrType::A, {"198.51.100.7"});
	resolver.set_records("25.2.0.192.in-addr.arpa", RrType::PTR, {"mail.example.com"});
	resolver.set_records("5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", RrType::PTR,
	                     {"mail.example.com"});
	resolver.set("broken.example", RrType::TXT, DnsAnswer{DnsStatus::temperror, {}, {}});

	// Fuzzed records: the checked domain (sometimes two records, a
	// permerror), and the include/redirect targets.
	std::vector<std::string> main_records{fuzzed_record(fdp)};
	if (fdp.ConsumeProbability<float>() < 0.1f) main_records.push_back(fuzzed_record(fdp));
	resolver.set_records("example.com", RrType::TXT, main_records);
	resolver.set_records("inc.example", RrType::TXT, {fuzzed_record(fdp)});
	resolver.set_records("_spf.example.com", RrType::TXT, {fuzzed_record(fdp)});
	resolver.set_records("exp.example.com", RrType::TXT, {fdp.ConsumeRandomLengthString(200)});

	IpAddr ip = fuzzed_ip(fdp);
	std::string localpart = fdp.ConsumeRandomLengthString(40);
	std::string helo = fdp.ConsumeBool() ? "mail.example.com" : fdp.ConsumeRandomLengthString(60);

	int host_calls = 0;
	SpfHostQuery query;
	query.ip = ip;
	query.domain = "example.com";
	query.sender_localpart = localpart;
	query.sender_domain = "example.com";
	query.helo = helo;
	query.receiver = "mx.test.example";
	query.now = 1700000000;
	spf_check_host(resolver, 1, query,
	               [&](SpfStatus status, std::string mechanism, std::string explanation, std::string problem) {
			       host_calls++;
			       if (status != SpfStatus::fail) FUZZ_CHECK(explanation.empty());
			       (void)spf_status_name(status);
		       });
	FUZZ_CHECK(host_calls == 1);

	int verify_calls = 0;
	SpfArgs args;
	args.remote_ip = ip;
	args.mailfrom_localpart = localpart;
	args.mailfrom_domain = fdp.ConsumeBool() ? "example.com" : "";
	args.helo_domain = fdp.ConsumeBool() ? "example.com" : "inc.example";
	args.local_hostname = "mx.test.example";
	args.now = 1700000000;
	spf_verify(resolver, 2, args, [&](SpfReceived received, std::string explanation, bool authentic) {
		verify_calls++;
		std::string header = received.header();
		FUZZ_CHECK(header.rfind("Received-SPF: ", 0) == 0);
		FUZZ_CHECK(header.size() >= 2 && header.compare(header.size() - 2, 2, "\r\n") == 0);
	});
	FUZZ_CHECK(verify_calls == 1);

	// Macro expansion on arbitrary text.
	SpfMacroContext ctx;
	ctx.ip = ip;
	ctx.sender_localpart = localpart;
	ctx.sender_domain = "example.com";
	ctx.domain = "example.com";
	ctx.helo = helo;
	ctx.receiver = "mx.test.example";
	ctx.now = 1700000000;
	bool for_exp = fdp.ConsumeBool();
	(void)spf_expand_macros(fdp.ConsumeRemainingBytesAsString(), ctx, for_exp);
	return 0;
}
