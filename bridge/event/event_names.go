package event

import (
	"mime"
	"path"
	"strconv"
	"strings"
)

// extensions maps content types to the extension a helpdesk gives an
// unnamed part. It is fixed here rather than read from mime.ExtensionsByType,
// whose answer depends on the machine's mime.types and lists ".jpe" before
// ".jpg".
var extensions = map[string]string{
	"text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "text/vcard": ".vcf",
	"text/x-vcard": ".vcf", "text/csv": ".csv", "text/xml": ".xml", "text/rfc822-headers": ".txt",
	"message/rfc822": ".eml", "message/delivery-status": ".txt", "message/disposition-notification": ".txt",
	"message/global": ".eml", "message/global-delivery-status": ".txt", "message/global-headers": ".txt",
	"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
	"image/bmp": ".bmp", "image/tiff": ".tif", "image/webp": ".webp", "image/svg+xml": ".svg", "image/heic": ".heic",
	"audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/ogg": ".ogg",
	"video/mp4": ".mp4", "video/quicktime": ".mov", "video/mpeg": ".mpg",
	"application/pdf": ".pdf", "application/zip": ".zip", "application/json": ".json", "application/xml": ".xml",
	"application/ics": ".ics", "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
	"application/pkcs7-mime": ".p7m", "application/x-pkcs7-mime": ".p7m", "application/pgp-signature": ".asc",
	"application/ms-tnef": ".dat", "application/vnd.ms-tnef": ".dat", "application/msword": ".doc",
	"application/vnd.ms-excel": ".xls", "application/vnd.ms-outlook": ".msg",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}

// baseNames are the names of unnamed parts whose type says what they are;
// other types are named after their top-level type ("image.jpg").
var baseNames = map[string]string{
	"message/delivery-status": "Delivery report", "message/global-delivery-status": "Delivery report",
	"message/disposition-notification": "Read receipt", "text/rfc822-headers": "Returned headers",
	"message/global-headers": "Returned headers", "message/rfc822": "Attached message",
	"message/global": "Attached message", "text/calendar": "invite", "application/ics": "invite",
	"text/vcard": "contact", "text/x-vcard": "contact", "application/pkcs7-signature": "smime",
	"application/x-pkcs7-signature": "smime", "application/pkcs7-mime": "smime", "application/x-pkcs7-mime": "smime",
	"application/pgp-signature": "signature", "application/ms-tnef": "winmail", "application/vnd.ms-tnef": "winmail",
	"text/html": "message",
}

// mediaType is the lower-case type/subtype of a Content-Type value.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// partName is the filename an attachment travels under: its own name as
// the sender wrote it (extension kept, none added); for a part without a
// name (or the placeholder "attachment"), a name from its content type, as
// helpdesks do:
// "image.jpg", "Delivery report.txt". used makes generated names unique
// within one message ("image.jpg", "image-2.jpg").
func partName(name, contentType string, used map[string]int) string {
	name = cleanFilename(name)
	mt := mediaType(contentType)
	ext := extensions[mt]
	if name != "" && name != "attachment" {
		return name
	}
	base := baseNames[mt]
	if base == "" {
		top, _, _ := strings.Cut(mt, "/")
		switch top {
		case "image", "audio", "video", "text":
			base = top
		default:
			base = "attachment"
		}
	}
	used[base+ext]++
	if n := used[base+ext]; n > 1 {
		return base + "-" + strconv.Itoa(n) + ext
	}
	return base + ext
}

// itemFilename is an attached message's file name: its subject (Graph's
// itemAttachment name) with ".eml", or the extension of what the item
// turned out to be (".ics", ".vcf").
func itemFilename(name, ext string, used map[string]int) string {
	name = cleanFilename(name)
	if name == "" {
		base := map[string]string{".eml": "Attached message", ".ics": "invite", ".vcf": "contact"}[ext]
		if base == "" {
			base = "attachment"
		}
		used[base+ext]++
		if n := used[base+ext]; n > 1 {
			return base + "-" + strconv.Itoa(n) + ext
		}
		return base + ext
	}
	if strings.EqualFold(path.Ext(name), ext) {
		return name
	}
	return name + ext
}

// cleanFilename drops what a file system or a download header cannot take:
// path separators and control characters become "_", surrounding spaces
// and dots go, and the result is at most 200 bytes (on a rune boundary).
func cleanFilename(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\' || r < 0x20 || r == 0x7f:
			return '_'
		}
		return r
	}, s)
	s = strings.Trim(s, " .")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
