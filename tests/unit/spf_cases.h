// Data-driven SPF (RFC 7208) cases: a DNS zone, a client IP, a MAIL FROM and
// a HELO name, and the expected result word. Kept free of tern types so a
// black-box test (or a script feeding python3-spf) can replay the same table.
//
// Zone conventions:
//  * type is "TXT", "A", "AAAA", "MX" (data "pref host", host "." for null
//    MX) or "PTR" (name is the reverse name, e.g. 1.2.0.192.in-addr.arpa);
//  * status "ok" with no data is a no-data answer; "nxdomain" and
//    "temperror" are DNS errors; a name/type not listed answers NXDOMAIN
//    (no-data when the name has records of another type).
// Case conventions: sender "" is the null reverse path; helo "[1.2.3.4]" is
// an address literal; mechanism/explanation "*" are not checked. The clock
// (%{t}) is spf_case_now and the receiver (%{r}) spf_case_receiver.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace tern::spf_cases {

struct ZoneRecord {
	std::string name;
	std::string type;
	std::vector<std::string> data;
	std::string status = "ok";
};

struct Case {
	std::string name;
	std::vector<ZoneRecord> zone;
	std::string ip;
	std::string sender;
	std::string helo;
	std::string result;
	std::string mechanism = "*";
	std::string explanation = "*";
};

inline constexpr long spf_case_now = 1700000000;
inline const char* const spf_case_receiver = "mx.receiver.example";

inline ZoneRecord txt(std::string name, std::string record) { return {std::move(name), "TXT", {std::move(record)}}; }
inline ZoneRecord a(std::string name, std::vector<std::string> ips) { return {std::move(name), "A", std::move(ips)}; }
inline ZoneRecord aaaa(std::string name, std::vector<std::string> ips) { return {std::move(name), "AAAA", std::move(ips)}; }
inline ZoneRecord mx(std::string name, std::vector<std::string> hosts) { return {std::move(name), "MX", std::move(hosts)}; }
inline ZoneRecord ptr(std::string name, std::vector<std::string> hosts) { return {std::move(name), "PTR", std::move(hosts)}; }
inline ZoneRecord tempfail(std::string name, std::string type) { return {std::move(name), std::move(type), {}, "temperror"}; }
inline ZoneRecord nodata(std::string name, std::string type) { return {std::move(name), std::move(type), {}, "ok"}; }

// Defaults used by most cases.
inline const char* const ip4 = "192.0.2.1";
inline const char* const ip6 = "2001:db8::1";
inline const char* const from = "user@example.com";
inline const char* const helo = "mx.example.org";
inline const char* const ptr4 = "1.2.0.192.in-addr.arpa";
inline const char* const ptr6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";

// n hosts named h1.example.com... each with address `addr`, and the
// "a:h1.example.com a:h2..." terms referring to them.
inline std::vector<ZoneRecord> hosts_with(int n, const std::string& addr)
{
	std::vector<ZoneRecord> z;
	for (int i = 1; i <= n; i++)
		z.push_back(a("h" + std::to_string(i) + ".example.com", {addr}));
	return z;
}
inline std::string a_terms(int n)
{
	std::string s;
	for (int i = 1; i <= n; i++)
		s += " a:h" + std::to_string(i) + ".example.com";
	return s;
}
inline std::vector<ZoneRecord> plus(std::vector<ZoneRecord> z, std::vector<ZoneRecord> more)
{
	z.insert(z.end(), more.begin(), more.end());
	return z;
}
inline std::vector<std::string> mx_names(int n)
{
	std::vector<std::string> v;
	for (int i = 1; i <= n; i++)
		v.push_back("10 m" + std::to_string(i) + ".example.com");
	return v;
}
inline std::vector<ZoneRecord> mx_hosts(int n, const std::string& last_addr)
{
	std::vector<ZoneRecord> z;
	for (int i = 1; i <= n; i++)
		z.push_back(a("m" + std::to_string(i) + ".example.com", {i == n ? last_addr : "198.51.100.9"}));
	return z;
}

inline const std::vector<Case>& cases()
{
	static const std::vector<Case> table = {
		// --- record selection (RFC 7208 4.4, 4.5)
		{"no txt record", {}, ip4, from, helo, "none", ""},
		{"txt but no spf", {txt("example.com", "some other text")}, ip4, from, helo, "none"},
		{"empty record default neutral", {txt("example.com", "v=spf1")}, ip4, from, helo, "neutral", "default"},
		{"v=spf10 is not spf", {txt("example.com", "v=spf10 +all")}, ip4, from, helo, "none"},
		{"version case-insensitive", {txt("example.com", "V=SPF1 +all")}, ip4, from, helo, "pass", "+all"},
		{"version needs space", {txt("example.com", "v=spf1+all")}, ip4, from, helo, "none"},
		{"two spf records", {{"example.com", "TXT", {"v=spf1 +all", "v=spf1 -all"}}}, ip4, from, helo, "permerror"},
		{"spf among other txt", {{"example.com", "TXT", {"google-site-verification=x", "v=spf1 +all"}}}, ip4, from, helo, "pass"},
		{"txt temperror", {tempfail("example.com", "TXT")}, ip4, from, helo, "temperror"},
		{"txt nodata", {nodata("example.com", "TXT"), a("example.com", {"192.0.2.9"})}, ip4, from, helo, "none"},
		{"extra spaces between terms", {txt("example.com", "v=spf1  ip4:192.0.2.1   -all")}, ip4, from, helo, "pass"},
		{"trailing spaces", {txt("example.com", "v=spf1 -all   ")}, ip4, from, helo, "fail"},
		{"single-label sender domain", {txt("localhost", "v=spf1 +all")}, ip4, "user@localhost", helo, "none"},
		{"empty label in sender domain", {}, ip4, "user@a..example.com", helo, "none"},

		// --- qualifiers (RFC 7208 4.6.2)
		{"+all", {txt("example.com", "v=spf1 +all")}, ip4, from, helo, "pass", "+all"},
		{"-all", {txt("example.com", "v=spf1 -all")}, ip4, from, helo, "fail", "-all"},
		{"~all", {txt("example.com", "v=spf1 ~all")}, ip4, from, helo, "softfail", "~all"},
		{"?all", {txt("example.com", "v=spf1 ?all")}, ip4, from, helo, "neutral", "?all"},
		{"bare all is pass", {txt("example.com", "v=spf1 all")}, ip4, from, helo, "pass", "all"},
		{"first match wins", {txt("example.com", "v=spf1 -ip4:192.0.2.1 +all")}, ip4, from, helo, "fail", "-ip4:192.0.2.1"},

		// --- ip4 (RFC 7208 5.6)
		{"ip4 exact", {txt("example.com", "v=spf1 ip4:192.0.2.1 -all")}, ip4, from, helo, "pass", "ip4:192.0.2.1"},
		{"ip4 cidr", {txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all")}, ip4, from, helo, "pass", "ip4:192.0.2.0/24"},
		{"ip4 no match", {txt("example.com", "v=spf1 ip4:192.0.3.0/24 -all")}, ip4, from, helo, "fail", "-all"},
		{"ip4 cidr 33", {txt("example.com", "v=spf1 ip4:192.0.2.1/33 +all")}, ip4, from, helo, "permerror"},
		{"ip4 three octets", {txt("example.com", "v=spf1 ip4:192.0.2 +all")}, ip4, from, helo, "permerror"},
		{"ip4 /0", {txt("example.com", "v=spf1 ip4:0.0.0.0/0 -all")}, ip4, from, helo, "pass"},
		{"ip4 cidr leading zero", {txt("example.com", "v=spf1 ip4:192.0.2.1/032 +all")}, ip4, from, helo, "permerror"},
		{"ip4 never matches ipv6 client", {txt("example.com", "v=spf1 ip4:0.0.0.0/0 -all")}, ip6, from, helo, "fail"},
		{"ip4 with ipv6 address", {txt("example.com", "v=spf1 ip4:2001:db8::1 +all")}, ip4, from, helo, "permerror"},
		{"ip4 missing address", {txt("example.com", "v=spf1 ip4 +all")}, ip4, from, helo, "permerror"},
		{"ipv4-mapped client is ipv4", {txt("example.com", "v=spf1 ip4:192.0.2.1 -all")}, "::ffff:192.0.2.1", from, helo, "pass"},

		// --- ip6 (RFC 7208 5.6)
		{"ip6 cidr", {txt("example.com", "v=spf1 ip6:2001:db8::/32 -all")}, ip6, from, helo, "pass", "ip6:2001:db8::/32"},
		{"ip6 exact", {txt("example.com", "v=spf1 ip6:2001:db8:0::1 -all")}, ip6, from, helo, "pass", "ip6:2001:db8::1"},
		{"ip6 no match", {txt("example.com", "v=spf1 ip6:2001:db9::/32 -all")}, ip6, from, helo, "fail"},
		{"ip6 cidr 129", {txt("example.com", "v=spf1 ip6:2001:db8::/129 +all")}, ip6, from, helo, "permerror"},
		{"ip6 never matches ipv4 client", {txt("example.com", "v=spf1 ip6:::/0 -all")}, ip4, from, helo, "fail"},
		{"ip6 with ipv4 address", {txt("example.com", "v=spf1 ip6:192.0.2.1 +all")}, ip4, from, helo, "permerror"},

		// --- a (RFC 7208 5.3)
		{"a current domain", {txt("example.com", "v=spf1 a -all"), a("example.com", {"192.0.2.1"})}, ip4, from, helo, "pass", "a"},
		{"a other domain", {txt("example.com", "v=spf1 a:other.example.net -all"), a("other.example.net", {"192.0.2.1"})}, ip4, from, helo, "pass", "a:other.example.net"},
		{"a ip4 cidr", {txt("example.com", "v=spf1 a/24 -all"), a("example.com", {"192.0.2.200"})}, ip4, from, helo, "pass", "a/24"},
		{"a no match", {txt("example.com", "v=spf1 a -all"), a("example.com", {"198.51.100.1"})}, ip4, from, helo, "fail"},
		{"a ipv6 uses aaaa", {txt("example.com", "v=spf1 a -all"), aaaa("example.com", {"2001:db8::1"})}, ip6, from, helo, "pass"},
		{"a ipv6 ignores a records", {txt("example.com", "v=spf1 a -all"), a("example.com", {"192.0.2.1"})}, ip6, from, helo, "fail"},
		{"a ip6 cidr", {txt("example.com", "v=spf1 a//64 -all"), aaaa("example.com", {"2001:db8::ffff"})}, ip6, from, helo, "pass", "a//64"},
		{"a dual cidr v6", {txt("example.com", "v=spf1 a/24//64 -all"), aaaa("example.com", {"2001:db8::ffff"})}, ip6, from, helo, "pass", "a/24//64"},
		{"a dual cidr v4", {txt("example.com", "v=spf1 a/24//64 -all"), a("example.com", {"192.0.2.99"})}, ip4, from, helo, "pass"},
		{"a domain and cidr", {txt("example.com", "v=spf1 a:other.example.net/24 -all"), a("other.example.net", {"192.0.2.77"})}, ip4, from, helo, "pass", "a:other.example.net/24"},
		{"a temperror", {txt("example.com", "v=spf1 a -all"), tempfail("example.com", "A")}, ip4, from, helo, "temperror", "a"},
		{"a nxdomain is no match", {txt("example.com", "v=spf1 a:nothere.example.com -all")}, ip4, from, helo, "fail"},
		{"a single-label target", {txt("example.com", "v=spf1 a:foo +all")}, ip4, from, helo, "permerror"},
		{"a cidr 33", {txt("example.com", "v=spf1 a/33 +all")}, ip4, from, helo, "permerror"},
		{"a numeric toplabel", {txt("example.com", "v=spf1 a:example.123 +all")}, ip4, from, helo, "permerror"},

		// --- mx (RFC 7208 5.4)
		{"mx pass", {txt("example.com", "v=spf1 mx -all"), mx("example.com", {"10 mx1.example.com"}), a("mx1.example.com", {"192.0.2.1"})}, ip4, from, helo, "pass", "mx"},
		{"mx other domain", {txt("example.com", "v=spf1 mx:other.example.net -all"), mx("other.example.net", {"10 mx.other.example.net"}), a("mx.other.example.net", {"192.0.2.1"})}, ip4, from, helo, "pass", "mx:other.example.net"},
		{"mx cidr", {txt("example.com", "v=spf1 mx/24 -all"), mx("example.com", {"10 mx1.example.com"}), a("mx1.example.com", {"192.0.2.250"})}, ip4, from, helo, "pass", "mx/24"},
		{"mx no match", {txt("example.com", "v=spf1 mx -all"), mx("example.com", {"10 mx1.example.com"}), a("mx1.example.com", {"198.51.100.1"})}, ip4, from, helo, "fail"},
		{"mx second host", {txt("example.com", "v=spf1 mx -all"), mx("example.com", {"10 mx1.example.com", "20 mx2.example.com"}), a("mx1.example.com", {"198.51.100.1"}), a("mx2.example.com", {"192.0.2.1"})}, ip4, from, helo, "pass"},
		{"mx ten names ok", plus({txt("example.com", "v=spf1 mx -all"), mx("example.com", mx_names(10))}, mx_hosts(10, "192.0.2.1")), ip4, from, helo, "pass"},
		{"mx eleven names", plus({txt("example.com", "v=spf1 mx -all"), mx("example.com", mx_names(11))}, mx_hosts(11, "192.0.2.1")), ip4, from, helo, "permerror", "mx"},
		{"mx temperror", {txt("example.com", "v=spf1 mx -all"), tempfail("example.com", "MX")}, ip4, from, helo, "temperror"},
		{"mx host temperror", {txt("example.com", "v=spf1 mx -all"), mx("example.com", {"10 mx1.example.com"}), tempfail("mx1.example.com", "A")}, ip4, from, helo, "temperror"},
		{"mx nxdomain no match", {txt("example.com", "v=spf1 mx:none.example.net -all")}, ip4, from, helo, "fail"},
		{"null mx no match", {txt("example.com", "v=spf1 mx -all"), mx("example.com", {"0 ."})}, ip4, from, helo, "fail"},
		{"mx ipv6", {txt("example.com", "v=spf1 mx -all"), mx("example.com", {"10 mx1.example.com"}), aaaa("mx1.example.com", {"2001:db8::1"})}, ip6, from, helo, "pass"},
		{"mx ip6 cidr", {txt("example.com", "v=spf1 mx//48 -all"), mx("example.com", {"10 mx1.example.com"}), aaaa("mx1.example.com", {"2001:db8::2"})}, ip6, from, helo, "pass", "mx//48"},

		// --- ptr (RFC 7208 5.5)
		{"ptr pass", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr4, {"mail.example.com"}), a("mail.example.com", {"192.0.2.1"})}, ip4, from, helo, "pass", "ptr"},
		{"ptr exact domain", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr4, {"example.com"}), a("example.com", {"192.0.2.1"})}, ip4, from, helo, "pass"},
		{"ptr not validated", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr4, {"mail.example.com"}), a("mail.example.com", {"198.51.100.1"})}, ip4, from, helo, "fail"},
		{"ptr other domain", {txt("example.com", "v=spf1 ptr:other.org -all"), ptr(ptr4, {"host.other.org"}), a("host.other.org", {"192.0.2.1"})}, ip4, from, helo, "pass", "ptr:other.org"},
		{"ptr name outside domain", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr4, {"mail.example.net"}), a("mail.example.net", {"192.0.2.1"})}, ip4, from, helo, "fail"},
		{"ptr suffix is not subdomain", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr4, {"badexample.com"}), a("badexample.com", {"192.0.2.1"})}, ip4, from, helo, "fail"},
		{"ptr lookup error no match", {txt("example.com", "v=spf1 ptr ~all"), tempfail(ptr4, "PTR")}, ip4, from, helo, "softfail"},
		{"ptr second name validates", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr4, {"x.example.net", "mail.example.com"}), a("x.example.net", {"192.0.2.1"}), a("mail.example.com", {"192.0.2.1"})}, ip4, from, helo, "pass"},
		{"ptr ipv6", {txt("example.com", "v=spf1 ptr -all"), ptr(ptr6, {"mail.example.com"}), aaaa("mail.example.com", {"2001:db8::1"})}, ip6, from, helo, "pass"},

		// --- exists (RFC 7208 5.7)
		{"exists ip", {txt("example.com", "v=spf1 exists:%{i}.bl.example.com -all"), a("192.0.2.1.bl.example.com", {"127.0.0.2"})}, ip4, from, helo, "pass", "exists:%{i}.bl.example.com"},
		{"exists no record", {txt("example.com", "v=spf1 exists:%{i}.bl.example.com -all")}, ip4, from, helo, "fail"},
		{"exists temperror", {txt("example.com", "v=spf1 exists:%{i}.bl.example.com -all"), tempfail("192.0.2.1.bl.example.com", "A")}, ip4, from, helo, "temperror"},
		{"exists uses A for ipv6", {txt("example.com", "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"), a("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com", {"127.0.0.2"})}, ip6, from, helo, "pass"},
		{"exists without domain", {txt("example.com", "v=spf1 exists -all")}, ip4, from, helo, "permerror"},
		{"exists rfc example", {txt("email.example.com", "v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all"), a("1.2.0.192.in-addr._spf.example.com", {"127.0.0.2"})}, ip4, "strong-bad@email.example.com", helo, "pass"},

		// --- include (RFC 7208 5.2)
		{"include pass", {txt("example.com", "v=spf1 include:_spf.example.net -all"), txt("_spf.example.net", "v=spf1 ip4:192.0.2.0/24 -all")}, ip4, from, helo, "pass", "include:_spf.example.net"},
		{"include fail does not match", {txt("example.com", "v=spf1 include:_spf.example.net ~all"), txt("_spf.example.net", "v=spf1 -all")}, ip4, from, helo, "softfail", "~all"},
		{"include softfail does not match", {txt("example.com", "v=spf1 include:_spf.example.net -all"), txt("_spf.example.net", "v=spf1 ~all")}, ip4, from, helo, "fail"},
		{"include neutral does not match", {txt("example.com", "v=spf1 include:_spf.example.net -all"), txt("_spf.example.net", "v=spf1 ?all")}, ip4, from, helo, "fail"},
		{"include none is permerror", {txt("example.com", "v=spf1 include:_spf.example.net +all")}, ip4, from, helo, "permerror", "include:_spf.example.net"},
		{"include temperror", {txt("example.com", "v=spf1 include:_spf.example.net +all"), tempfail("_spf.example.net", "TXT")}, ip4, from, helo, "temperror"},
		{"include permerror", {txt("example.com", "v=spf1 include:_spf.example.net +all"), txt("_spf.example.net", "v=spf1 bogus")}, ip4, from, helo, "permerror"},
		{"-include with pass is fail", {txt("example.com", "v=spf1 -include:_spf.example.net +all"), txt("_spf.example.net", "v=spf1 +all")}, ip4, from, helo, "fail", "-include:_spf.example.net"},
		{"include nested", {txt("example.com", "v=spf1 include:one.example.net -all"), txt("one.example.net", "v=spf1 include:two.example.net -all"), txt("two.example.net", "v=spf1 ip4:192.0.2.1 -all")}, ip4, from, helo, "pass"},
		{"include loop", {txt("example.com", "v=spf1 include:one.example.net -all"), txt("one.example.net", "v=spf1 include:example.com -all")}, ip4, from, helo, "permerror"},
		{"include without domain", {txt("example.com", "v=spf1 include +all")}, ip4, from, helo, "permerror"},
		{"include single-label expansion", {txt("example.com", "v=spf1 include:%{l} +all")}, ip4, from, helo, "permerror"},
		{"include inner redirect", {txt("example.com", "v=spf1 include:one.example.net -all"), txt("one.example.net", "v=spf1 redirect=two.example.net"), txt("two.example.net", "v=spf1 +all")}, ip4, from, helo, "pass"},

		// --- redirect (RFC 7208 6.1)
		{"redirect pass", {txt("example.com", "v=spf1 redirect=_spf.example.net"), txt("_spf.example.net", "v=spf1 ip4:192.0.2.1 -all")}, ip4, from, helo, "pass", "ip4:192.0.2.1"},
		{"redirect fail", {txt("example.com", "v=spf1 redirect=_spf.example.net"), txt("_spf.example.net", "v=spf1 -all")}, ip4, from, helo, "fail", "-all"},
		{"redirect to none", {txt("example.com", "v=spf1 redirect=_spf.example.net")}, ip4, from, helo, "permerror"},
		{"redirect unused on match", {txt("example.com", "v=spf1 ip4:192.0.2.1 redirect=_spf.example.net")}, ip4, from, helo, "pass", "ip4:192.0.2.1"},
		{"redirect after all ignored", {txt("example.com", "v=spf1 -all redirect=_spf.example.net"), txt("_spf.example.net", "v=spf1 +all")}, ip4, from, helo, "fail"},
		{"duplicate redirect", {txt("example.com", "v=spf1 redirect=a.example.net redirect=b.example.net")}, ip4, from, helo, "permerror"},
		{"redirect loop", {txt("example.com", "v=spf1 redirect=example.com")}, ip4, from, helo, "permerror"},
		{"redirect with macro", {txt("example.com", "v=spf1 redirect=_spf.%{d}"), txt("_spf.example.com", "v=spf1 +all")}, ip4, from, helo, "pass"},
		{"redirect modifier case-insensitive", {txt("example.com", "v=spf1 REDIRECT=_spf.example.net"), txt("_spf.example.net", "v=spf1 ~all")}, ip4, from, helo, "softfail"},
		{"redirect target temperror", {txt("example.com", "v=spf1 redirect=_spf.example.net"), tempfail("_spf.example.net", "TXT")}, ip4, from, helo, "temperror"},

		// --- exp (RFC 7208 6.2)
		{"exp explanation", {txt("example.com", "v=spf1 -all exp=explain.example.com"), txt("explain.example.com", "%{i} is not one of %{d}'s designated mail servers.")}, ip4, from, helo, "fail", "-all", "192.0.2.1 is not one of example.com's designated mail servers."},
		{"exp c r t macros", {txt("example.com", "v=spf1 -all exp=explain.example.com"), txt("explain.example.com", "%{c} by %{r} at %{t}")}, ip6, from, helo, "fail", "-all", "2001:db8::1 by mx.receiver.example at 1700000000"},
		{"exp missing txt", {txt("example.com", "v=spf1 -all exp=explain.example.com")}, ip4, from, helo, "fail", "-all", ""},
		{"exp multiple txt", {txt("example.com", "v=spf1 -all exp=explain.example.com"), {"explain.example.com", "TXT", {"one", "two"}}}, ip4, from, helo, "fail", "-all", ""},
		{"exp only on fail", {txt("example.com", "v=spf1 ~all exp=explain.example.com"), txt("explain.example.com", "go away")}, ip4, from, helo, "softfail", "~all", ""},
		{"duplicate exp", {txt("example.com", "v=spf1 -all exp=a.example.com exp=b.example.com")}, ip4, from, helo, "permerror"},
		{"exp of redirect target", {txt("example.com", "v=spf1 exp=outer.example.com redirect=t.example.net"), txt("t.example.net", "v=spf1 -all exp=inner.example.net"), txt("outer.example.com", "outer"), txt("inner.example.net", "inner %{d} %{o}")}, ip4, from, helo, "fail", "-all", "inner t.example.net example.com"},
		{"no exp from origin after redirect", {txt("example.com", "v=spf1 exp=outer.example.com redirect=t.example.net"), txt("t.example.net", "v=spf1 -all"), txt("outer.example.com", "outer")}, ip4, from, helo, "fail", "-all", ""},
		{"exp text syntax error", {txt("example.com", "v=spf1 -all exp=explain.example.com"), txt("explain.example.com", "bad %x macro")}, ip4, from, helo, "fail", "-all", ""},
		{"exp name with macro", {txt("example.com", "v=spf1 -all exp=%{l}.exp.example.com"), txt("user.exp.example.com", "sorry %{L}, %{s}")}, ip4, from, helo, "fail", "-all", "sorry user, user@example.com"},
		{"exp escapes", {txt("example.com", "v=spf1 -all exp=explain.example.com"), txt("explain.example.com", "100%% no%_way%-")}, ip4, from, helo, "fail", "-all", "100% no way%20"},
		{"exp syntax error is permerror", {txt("example.com", "v=spf1 -all exp=")}, ip4, from, helo, "permerror"},

		// --- modifiers and syntax (RFC 7208 6, 12)
		{"unknown modifier ignored", {txt("example.com", "v=spf1 foo=bar +all")}, ip4, from, helo, "pass"},
		{"unknown modifier with macro", {txt("example.com", "v=spf1 moo.cow-far_out=man:dog/cat ip4:192.0.2.1 -all")}, ip4, from, helo, "pass"},
		{"unknown modifier bad macro", {txt("example.com", "v=spf1 foo=%x +all")}, ip4, from, helo, "permerror"},
		{"unknown mechanism", {txt("example.com", "v=spf1 foo -all")}, ip4, from, helo, "permerror"},
		{"all with argument", {txt("example.com", "v=spf1 -all:foo")}, ip4, from, helo, "permerror"},
		{"lone qualifier", {txt("example.com", "v=spf1 -")}, ip4, from, helo, "permerror"},
		{"syntax error after match", {txt("example.com", "v=spf1 +all ip4:bogus")}, ip4, from, helo, "permerror"},
		{"mechanism case-insensitive", {txt("example.com", "v=spf1 IP4:192.0.2.1 -ALL")}, ip4, from, helo, "pass"},
		{"bad macro in domain-spec", {txt("example.com", "v=spf1 exists:%{x}.example.com +all")}, ip4, from, helo, "permerror"},
		{"zero digit transformer", {txt("example.com", "v=spf1 exists:%{d0}.example.com +all")}, ip4, from, helo, "permerror"},
		{"c macro outside exp", {txt("example.com", "v=spf1 exists:%{c}.example.com +all")}, ip4, from, helo, "permerror"},
		{"c macro unused after match", {txt("example.com", "v=spf1 +all exists:%{c}.example.com")}, ip4, from, helo, "pass"},
		{"ptr with cidr", {txt("example.com", "v=spf1 ptr/24 +all")}, ip4, from, helo, "permerror"},

		// --- DNS-querying term limit (RFC 7208 4.6.4)
		{"ten dns terms ok", plus({txt("example.com", "v=spf1" + a_terms(10) + " +all")}, hosts_with(10, "198.51.100.1")), ip4, from, helo, "pass", "+all"},
		{"eleven dns terms", plus({txt("example.com", "v=spf1" + a_terms(11) + " +all")}, hosts_with(11, "198.51.100.1")), ip4, from, helo, "permerror", "a:h11.example.com"},
		{"match before the limit", plus({txt("example.com", "v=spf1" + a_terms(10) + " a:h11.example.com")}, plus(hosts_with(10, "192.0.2.1"), hosts_with(0, ""))), ip4, from, helo, "pass", "a:h1.example.com"},
		{"include counts", plus({txt("example.com", "v=spf1 include:inc.example.com" + a_terms(9) + " +all"), txt("inc.example.com", "v=spf1 a:h10.example.com ?all")}, hosts_with(10, "198.51.100.1")), ip4, from, helo, "permerror"},
		{"include inner terms count", plus({txt("example.com", "v=spf1 include:inc.example.com" + a_terms(8) + " +all"), txt("inc.example.com", "v=spf1 a:h9.example.com -all")}, hosts_with(9, "198.51.100.1")), ip4, from, helo, "pass"},
		{"redirect counts", plus({txt("example.com", "v=spf1" + a_terms(10) + " redirect=r.example.net"), txt("r.example.net", "v=spf1 +all")}, hosts_with(10, "198.51.100.1")), ip4, from, helo, "permerror"},
		{"ip4 and all do not count", {txt("example.com", "v=spf1 ip4:10.0.0.1 ip4:10.0.0.2 ip4:10.0.0.3 ip4:10.0.0.4 ip4:10.0.0.5 ip4:10.0.0.6 ip4:10.0.0.7 ip4:10.0.0.8 ip4:10.0.0.9 ip4:10.0.0.10 ip4:10.0.0.11 ip6:2001:db8::5 +all")}, ip4, from, helo, "pass"},
		{"exists counts", {txt("example.com", "v=spf1 exists:e1.example.com exists:e2.example.com exists:e3.example.com exists:e4.example.com exists:e5.example.com exists:e6.example.com exists:e7.example.com exists:e8.example.com exists:e9.example.com exists:e10.example.com exists:e11.example.com +all"), a("e1.example.com", {}), a("e2.example.com", {"127.0.0.2"})}, ip4, from, helo, "pass", "exists:e2.example.com"},

		// --- void lookup limit (RFC 7208 4.6.4)
		{"two void lookups ok", {txt("example.com", "v=spf1 a:v1.example.com a:v2.example.com +all")}, ip4, from, helo, "pass"},
		{"three void lookups", {txt("example.com", "v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com +all")}, ip4, from, helo, "permerror", "a:v3.example.com"},
		{"nodata counts as void", {txt("example.com", "v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com +all"), aaaa("v1.example.com", {"2001:db8::9"}), aaaa("v2.example.com", {"2001:db8::9"}), aaaa("v3.example.com", {"2001:db8::9"})}, ip4, from, helo, "permerror"},
		{"exists void counts", {txt("example.com", "v=spf1 exists:v1.example.com mx:v2.example.com a:v3.example.com +all")}, ip4, from, helo, "permerror"},
		{"mx host voids count", {txt("example.com", "v=spf1 mx +all"), mx("example.com", {"10 v1.example.com", "20 v2.example.com", "30 v3.example.com"})}, ip4, from, helo, "permerror", "mx"},
		{"include record lookup not void", {txt("example.com", "v=spf1 a:v1.example.com a:v2.example.com include:inc.example.com -all"), txt("inc.example.com", "v=spf1 +all")}, ip4, from, helo, "pass"},

		// --- macros via DNS (RFC 7208 7)
		{"macro s", {txt("example.com", "v=spf1 exists:%{s}.m.example.com -all"), a("user@example.com.m.example.com", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro l and o", {txt("example.com", "v=spf1 exists:%{l}.%{o}.m.example.net -all"), a("user.example.com.m.example.net", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro d in include", {txt("example.com", "v=spf1 include:inc.example.net -all"), txt("inc.example.net", "v=spf1 exists:%{d}.%{o}.m.example.net -all"), a("inc.example.net.example.com.m.example.net", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro h", {txt("example.com", "v=spf1 exists:%{h}.h.example.com -all"), a("mx.example.org.h.example.com", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro v ipv4", {txt("example.com", "v=spf1 exists:%{v}.example.com -all"), a("in-addr.example.com", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro v ipv6", {txt("example.com", "v=spf1 exists:%{v}.example.com -all"), a("ip6.example.com", {"127.0.0.2"})}, ip6, from, helo, "pass"},
		{"macro p validated", {txt("example.com", "v=spf1 exists:%{p}.p.example.net -all"), ptr(ptr4, {"mail.example.com"}), a("mail.example.com", {"192.0.2.1"}), a("mail.example.com.p.example.net", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro p unknown", {txt("example.com", "v=spf1 exists:%{p}.p.example.net -all"), a("unknown.p.example.net", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro p prefers domain", {txt("example.com", "v=spf1 exists:%{p}.p.example.net -all"), ptr(ptr4, {"other.example.org", "mail.example.com"}), a("other.example.org", {"192.0.2.1"}), a("mail.example.com", {"192.0.2.1"}), a("mail.example.com.p.example.net", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro url escape", {txt("example.com", "v=spf1 exists:%{L}.esc.example.com -all"), a("a%2Bb.esc.example.com", {"127.0.0.2"})}, ip4, "a+b@example.com", helo, "pass"},
		{"macro delimiter", {txt("example.com", "v=spf1 exists:%{l-}.d.example.com -all"), a("first.last.d.example.com", {"127.0.0.2"})}, ip4, "first-last@example.com", helo, "pass"},
		{"macro digits then reverse", {txt("example.com", "v=spf1 exists:%{i2r}.r.example.com -all"), a("0.192.r.example.com", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro reverse before digits", {txt("example.com", "v=spf1 exists:%{ir2}.r.example.com +all")}, ip4, from, helo, "permerror"},
		{"macro upper d reverse", {txt("sub.example.com", "v=spf1 exists:%{D2R}.x.example.com -all"), a("example.sub.x.example.com", {"127.0.0.2"})}, ip4, "u@sub.example.com", helo, "pass"},
		{"long expansion truncated", {txt("example.com", "v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.t.example.com -all"),
		                              // 5*61+13 = 318 characters: two labels go (RFC 7208 7.3).
		                              a(std::string(60, 'x') + "." + std::string(60, 'x') + "." + std::string(60, 'x') + ".t.example.com", {"127.0.0.2"})},
		 ip4, std::string(60, 'x') + "@example.com", helo, "pass"},
		{"empty localpart is postmaster", {txt("example.com", "v=spf1 exists:%{l}.l.example.com -all"), a("postmaster.l.example.com", {"127.0.0.2"})}, ip4, "@example.com", helo, "pass"},

		// --- domain-spec grammar to the letter (RFC 7208 5, 7.1, 12)
		{"a domain-spec with colon and slash", {txt("example.com", "v=spf1 a:foo:bar/baz.example.com -all"), a("foo:bar/baz.example.com", {"192.0.2.1"})}, ip4, from, helo, "pass", "a:foo:bar/baz.example.com"},
		{"a colon domain-spec then cidr", {txt("example.com", "v=spf1 a:foo:bar/baz.example.com/24 -all"), a("foo:bar/baz.example.com", {"192.0.2.200"})}, ip4, from, helo, "pass", "a:foo:bar/baz.example.com/24"},
		{"mx slash domain-spec then dual cidr", {txt("example.com", "v=spf1 mx:m/x.example.com/24//64 -all"), mx("m/x.example.com", {"10 mx1.example.com"}), aaaa("mx1.example.com", {"2001:db8::ff"})}, ip6, from, helo, "pass", "mx:m/x.example.com/24//64"},
		{"a double slash inside the name", {txt("example.com", "v=spf1 a:x//y.example.com//64 -all"), aaaa("x//y.example.com", {"2001:db8::ff"})}, ip6, from, helo, "pass", "a:x//y.example.com//64"},
		{"a trailing cidr with a leading zero", {txt("example.com", "v=spf1 a:foo.example.com/024 +all"), a("foo.example.com", {"192.0.2.1"})}, ip4, from, helo, "permerror"},
		{"a slash without digits stays in the name", {txt("example.com", "v=spf1 a:example.com/abc +all")}, ip4, from, helo, "permerror"},
		{"macro literals in domain-spec", {txt("example.com", "v=spf1 a:macro%%percent%_%_space%-url-space.example.com -all"), a("macro%percent  space%20url-space.example.com", {"192.0.2.1"})}, ip4, from, helo, "pass"},
		{"exp expansion is no domain", {txt("example.com", "v=spf1 -all exp=%{l}")}, ip4, from, helo, "fail", "-all", ""},
		{"exp expansion with an empty label", {txt("example.com", "v=spf1 -all exp=%{l}.x.example.com")}, ip4, "a..b@example.com", helo, "fail", "-all", ""},
		{"exp text uses p", {txt("example.com", "v=spf1 -all exp=e.example.com"), txt("e.example.com", "%{i} is %{p}"), ptr(ptr4, {"mail.example.com"}), a("mail.example.com", {"192.0.2.1"})}, ip4, from, helo, "fail", "-all", "192.0.2.1 is mail.example.com"},
		{"exp text p unvalidated is unknown", {txt("example.com", "v=spf1 -all exp=e.example.com"), txt("e.example.com", "%{i} is %{p}"), ptr(ptr4, {"mail.example.com"}), a("mail.example.com", {"198.51.100.1"})}, ip4, from, helo, "fail", "-all", "192.0.2.1 is unknown"},
		{"macro p equal to domain first", {txt("example.com", "v=spf1 exists:%{p}.p.example.net -all"), ptr(ptr4, {"mail.example.com", "example.com"}), a("mail.example.com", {"192.0.2.1"}), a("example.com", {"192.0.2.1"}), a("example.com.p.example.net", {"127.0.0.2"})}, ip4, from, helo, "pass"},
		{"macro p ipv6 validated", {txt("example.com", "v=spf1 exists:%{p}.p.example.net -all"), ptr(ptr6, {"mail.example.com"}), aaaa("mail.example.com", {"2001:db8::1"}), a("mail.example.com.p.example.net", {"127.0.0.2"})}, ip6, from, helo, "pass"},
		{"macro i ipv6 nibbles", {txt("example.com", "v=spf1 exists:%{i}.x.example.com -all"), a("2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.x.example.com", {"127.0.0.2"})}, ip6, from, helo, "pass"},
		{"macro v ipv6 in exp", {txt("example.com", "v=spf1 -all exp=e.example.com"), txt("e.example.com", "%{v} %{c}")}, ip6, from, helo, "fail", "-all", "ip6 2001:db8::1"},
		{"localpart with a space", {txt("example.com", "v=spf1 exists:%{l}.l.example.com -all"), a("john doe.l.example.com", {"127.0.0.2"})}, ip4, "john doe@example.com", helo, "pass"},

		// --- HELO names that are no FQDN (RFC 7208 2.3, 4.3)
		{"null sender helo single label", {txt("localhost", "v=spf1 +all")}, ip4, "", "localhost", "none", ""},
		{"null sender helo with a space", {txt("foo bar.example.com", "v=spf1 +all")}, ip4, "", "foo bar.example.com", "none", ""},
		{"helo with a space in h macro", {txt("example.com", "v=spf1 exists:%{h}.h.example.com -all"), a("foo bar.h.example.com", {"127.0.0.2"})}, ip4, from, "foo bar", "pass"},
		{"single-label helo in h macro", {txt("example.com", "v=spf1 exists:%{h}.h.example.com -all"), a("localhost.h.example.com", {"127.0.0.2"})}, ip4, from, "localhost", "pass"},

		// --- identities (the model's SPF check)
		{"null sender uses helo", {txt("mx.example.org", "v=spf1 ip4:192.0.2.1 -all")}, ip4, "", helo, "pass"},
		{"null sender helo localpart postmaster", {txt("mx.example.org", "v=spf1 exists:%{l}.%{o}.n.example.net -all"), a("postmaster.mx.example.org.n.example.net", {"127.0.0.2"})}, ip4, "", helo, "pass"},
		{"null sender helo ip literal", {txt("example.com", "v=spf1 +all")}, ip4, "", "[192.0.2.1]", "none", ""},
		{"mail from preferred over helo", {txt("example.com", "v=spf1 -all"), txt("mx.example.org", "v=spf1 +all")}, ip4, from, helo, "fail"},
		{"helo ip literal with sender", {txt("example.com", "v=spf1 exists:%{h}.h.example.com -all"), a("192.0.2.1.h.example.com", {"127.0.0.2"})}, ip4, from, "[192.0.2.1]", "pass"},
	};
	return table;
}

// Cases where python3-spf (2.0.14, strict mode) answers differently because
// it deviates from RFC 7208; tern follows the RFC text cited. A cross-check
// against python3-spf should skip these (checked once: all other cases
// agree).
inline const std::vector<std::pair<std::string, std::string>>& pyspf_known_differences()
{
	static const std::vector<std::pair<std::string, std::string>> list = {
		{"single-label sender domain", "RFC 7208 4.3: not a multi-label domain gives none"},
		{"null sender helo single label", "RFC 7208 2.3, 4.3: a HELO that is no FQDN gives none"},
		{"null sender helo with a space", "RFC 7208 2.3, 4.3: a HELO that is no FQDN gives none"},
		{"ptr lookup error no match", "RFC 7208 5.5: a PTR lookup error makes ptr not match"},
		{"redirect modifier case-insensitive", "RFC 7208 12 / RFC 5234: ABNF literals are case-insensitive"},
		{"zero digit transformer", "RFC 7208 7.3: the DIGIT transformer MUST be nonzero"},
		{"c macro unused after match", "RFC 7208 7.2 restricts c/r/t by use; tern (like the model) errs when expanding"},
		{"macro reverse before digits", "RFC 7208 12: transformers = *DIGIT [\"r\"]"},
		{"macro upper d reverse", "RFC 7208 12: the \"r\" transformer is case-insensitive"},
		{"long expansion truncated", "RFC 7208 7.3: remove labels until at most 253 characters remain"},
	};
	return list;
}

// RFC 7208 7.4 macro examples: sender strong-bad@email.example.com, client
// 192.0.2.3 (or 2001:db8::cb01), validated domain mx.example.org, helo
// mx.example.org, <domain> email.example.com.
struct MacroCase {
	std::string macro;
	std::string ip;
	std::string expansion;  // "" with valid=false: syntax error
	bool for_exp = false;
	bool valid = true;
};

inline const std::vector<MacroCase>& macro_cases()
{
	static const std::vector<MacroCase> table = {
		{"%{s}", "192.0.2.3", "strong-bad@email.example.com"},
		{"%{o}", "192.0.2.3", "email.example.com"},
		{"%{d}", "192.0.2.3", "email.example.com"},
		{"%{d4}", "192.0.2.3", "email.example.com"},
		{"%{d3}", "192.0.2.3", "email.example.com"},
		{"%{d2}", "192.0.2.3", "example.com"},
		{"%{d1}", "192.0.2.3", "com"},
		{"%{dr}", "192.0.2.3", "com.example.email"},
		{"%{d2r}", "192.0.2.3", "example.email"},
		{"%{l}", "192.0.2.3", "strong-bad"},
		{"%{l-}", "192.0.2.3", "strong.bad"},
		{"%{lr}", "192.0.2.3", "strong-bad"},
		{"%{lr-}", "192.0.2.3", "bad.strong"},
		{"%{l1r-}", "192.0.2.3", "strong"},
		{"%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr._spf.example.com"},
		{"%{lr-}.lp._spf.%{d2}", "192.0.2.3", "bad.strong.lp._spf.example.com"},
		{"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{"%{d2}.trusted-domains.example.net", "192.0.2.3", "example.com.trusted-domains.example.net"},
		{"%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
		{"%{p}", "192.0.2.3", "mx.example.org"},
		{"%{p2}", "192.0.2.3", "example.org"},
		{"%{h}", "192.0.2.3", "mx.example.org"},
		{"%{i}", "2001:db8::cb01", "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1"},
		{"%{S}", "192.0.2.3", "strong-bad%40email.example.com"},
		{"%{l+-}", "192.0.2.3", "strong.bad"},
		{"%{l=}", "192.0.2.3", "strong-bad"},
		{"%{d10}", "192.0.2.3", "email.example.com"},
		{"%%%_%-", "192.0.2.3", "% %20"},
		{"%{c}", "192.0.2.3", "192.0.2.3", true},
		{"%{r}", "192.0.2.3", "mx.receiver.example", true},
		{"%{t}", "192.0.2.3", "1700000000", true},
		{"%{c}", "192.0.2.3", "", false, false},
		{"%{r}", "192.0.2.3", "", false, false},
		{"%{t}", "192.0.2.3", "", false, false},
		{"%{d0}", "192.0.2.3", "", false, false},
		{"%{x}", "192.0.2.3", "", false, false},
		{"%{d", "192.0.2.3", "", false, false},
		{"%", "192.0.2.3", "", false, false},
		{"%a", "192.0.2.3", "", false, false},
		{"%{d2r:}", "192.0.2.3", "", false, false},
	};
	return table;
}

}  // namespace tern::spf_cases
