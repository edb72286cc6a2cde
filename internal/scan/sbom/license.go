package sbom

import "strings"

// spdxIDs maps the licenses packages commonly declare, lower-cased and by
// SPDX id or common name, to their SPDX ids. A license not here is
// written by name (CycloneDX) or as NOASSERTION (SPDX): a wrong id is
// worse than none.
var spdxIDs = func() map[string]string {
	m := map[string]string{}
	for _, id := range []string{"0BSD", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0", "Artistic-1.0", "Artistic-2.0",
		"BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC0-1.0", "CDDL-1.0", "EPL-1.0", "EPL-2.0",
		"GPL-1.0-only", "GPL-1.0-or-later", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC",
		"LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later",
		"MIT", "MIT-0", "MPL-1.1", "MPL-2.0", "OpenSSL", "PSF-2.0", "Python-2.0", "Ruby", "Unicode-DFS-2016", "Unlicense", "WTFPL",
		"X11", "Zlib", "BlueOak-1.0.0", "CC-BY-SA-4.0", "curl", "Beerware", "HPND", "PostgreSQL", "OFL-1.1"} {
		m[strings.ToLower(id)] = id
	}
	for name, id := range map[string]string{
		"apache 2.0": "Apache-2.0", "apache license 2.0": "Apache-2.0", "apache software license": "Apache-2.0",
		"apache license, version 2.0": "Apache-2.0", "mit license": "MIT", "bsd license": "BSD-3-Clause", "bsd": "BSD-3-Clause",
		"isc license": "ISC", "isc license (iscl)": "ISC", "gpl-2": "GPL-2.0-only", "gpl-3": "GPL-3.0-only", "gplv2": "GPL-2.0-only", "gplv3": "GPL-3.0-only", "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0", "python software foundation license": "PSF-2.0",
		"the unlicense (unlicense)": "Unlicense", "public domain": "", "gpl-2.0": "GPL-2.0-only", "gpl-3.0": "GPL-3.0-only",
		"gpl-2.0+": "GPL-2.0-or-later", "gpl-3.0+": "GPL-3.0-or-later", "lgpl-2.1+": "LGPL-2.1-or-later",
		// Debian's short names (debian/copyright, DEP-5).
		"gpl-1+": "GPL-1.0-or-later", "gpl-2+": "GPL-2.0-or-later", "gpl-3+": "GPL-3.0-or-later", "gplv3+": "GPL-3.0-or-later",
		"lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later", "lgpl-2.1": "LGPL-2.1-only", "lgpl-3": "LGPL-3.0-only",
		"lgpl-3+": "LGPL-3.0-or-later", "expat": "MIT", "artistic": "Artistic-1.0", "artistic-2": "Artistic-2.0",
		"apache-2": "Apache-2.0", "mpl-2": "MPL-2.0", "cc0": "CC0-1.0",
	} {
		if id != "" {
			m[name] = id
		}
	}
	return m
}()

// spdxID returns the SPDX id for a declared license.
func spdxID(l string) (string, bool) {
	id, ok := spdxIDs[strings.ToLower(strings.TrimSpace(l))]
	return id, ok
}

// validExpression reports whether l is an SPDX expression over known ids:
// ids, AND, OR, WITH exceptions and parentheses, balanced.
func validExpression(l string) bool {
	l = strings.NewReplacer("(", " ( ", ")", " ) ").Replace(l)
	depth, expectID, n := 0, true, 0
	for tok := range strings.FieldsSeq(l) {
		n++
		switch {
		case tok == "(":
			if !expectID {
				return false
			}
			depth++
		case tok == ")":
			if expectID || depth == 0 {
				return false
			}
			depth--
		case tok == "AND" || tok == "OR" || tok == "WITH":
			if expectID {
				return false
			}
			expectID = true
		default:
			if !expectID {
				return false
			}
			if _, ok := spdxIDs[strings.ToLower(tok)]; !ok && !strings.Contains(strings.ToLower(tok), "exception") {
				return false
			}
			if id := spdxIDs[strings.ToLower(tok)]; id != "" && id != tok {
				return false // ids are case-sensitive in expressions
			}
			expectID = false
		}
	}
	return n > 0 && depth == 0 && !expectID
}
