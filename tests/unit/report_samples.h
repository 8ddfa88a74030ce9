// Report fixtures shared by the unit and black-box tests: a DMARC aggregate
// report shaped as RFC 7489 appendix C gives it, RFC 8460 4.4's TLS report,
// and the gzip, zip and MIME wrappings reporters send them in.
#pragma once
#include <zip.h>
#include <zlib.h>

#include <string>

#include "util/base64.h"

namespace tern::testing {

inline const std::string dmarc_xml = R"(<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>receiver.example</org_name>
    <email>noreply-dmarc@receiver.example</email>
    <report_id>9391651994964116463</report_id>
    <date_range><begin>1335571200</begin><end>1335657599</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>example.org</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.1</source_ip><count>2</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.org</domain><result>fail</result><human_result></human_result></dkim>
      <spf><domain>example.org</domain><result>pass</result></spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.9</source_ip><count>3</count>
      <policy_evaluated><disposition>quarantine</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results><spf><domain>spoof.example</domain><result>fail</result></spf></auth_results>
  </record>
</feedback>
)";

// RFC 8460 4.4's example, trimmed of failure details.
inline const std::string tls_json = R"({
  "organization-name": "Company-X",
  "date-range": {"start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z"},
  "contact-info": "sts-reporting@company-x.example",
  "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
  "policies": [{
    "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
               "policy-domain": "company-y.example", "mx-host": ["*.mail.company-y.example"]},
    "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 303},
    "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "2001:db8:abcd:0012::1",
                         "receiving-mx-hostname": "mx1.mail.company-y.example", "failed-session-count": 100}]
  }]
})";

inline std::string gzip(const std::string& data) {
	z_stream z{};
	deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	std::string out(compressBound(static_cast<uLong>(data.size())) + 64, '\0');
	z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
	z.avail_in = static_cast<uInt>(data.size());
	z.next_out = reinterpret_cast<Bytef*>(out.data());
	z.avail_out = static_cast<uInt>(out.size());
	deflate(&z, Z_FINISH);
	out.resize(z.total_out);
	deflateEnd(&z);
	return out;
}

inline std::string zip_one(const std::string& name, const std::string& data) {
	zip_error_t err;
	zip_error_init(&err);
	zip_source_t* dst = zip_source_buffer_create(nullptr, 0, 0, &err);
	zip_source_keep(dst);
	zip_t* z = zip_open_from_source(dst, ZIP_TRUNCATE, &err);
	zip_source_t* file = zip_source_buffer(z, data.data(), data.size(), 0);
	zip_file_add(z, name.c_str(), file, ZIP_FL_OVERWRITE);
	zip_close(z);
	zip_source_open(dst);
	zip_source_seek(dst, 0, SEEK_END);
	zip_int64_t size = zip_source_tell(dst);
	zip_source_seek(dst, 0, SEEK_SET);
	std::string out(static_cast<size_t>(size), '\0');
	zip_source_read(dst, out.data(), static_cast<zip_uint64_t>(size));
	zip_source_close(dst);
	zip_source_free(dst);
	return out;
}

inline std::string message_with(const std::string& type, const std::string& name, const std::string& content) {
	return "From: noreply-dmarc@receiver.example\r\nSubject: Report Domain: example.org\r\n"
	       "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	       "--b\r\nContent-Type: text/plain\r\n\r\nThis is a report.\r\n"
	       "--b\r\nContent-Type: " +
	    type + "; name=" + name + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64_encode(content) +
	    "\r\n--b--\r\n";
}


}  // namespace tern::testing
