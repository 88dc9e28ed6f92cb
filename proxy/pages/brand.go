package pages

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Defaults used when a Brand field is empty or invalid.
const (
	defaultTitle      = "Gatehouse"
	defaultPrimary    = "#2b59c3"
	defaultBackground = "#f2f4f7"
	// maxTitleRunes caps the brand title so a long policy value cannot
	// break the header layout.
	maxTitleRunes = 60
	// maxLogoDataURI caps a data: logo; it is inlined into every page.
	maxLogoDataURI = 32 << 10
)

// Fixed palette around the brand colours. The brand supplies the accent and
// the page background; card surfaces and body text stay fixed so contrast is
// guaranteed whatever the brand says.
var (
	lightSurface = mustHex("#ffffff")
	lightText    = mustHex("#1b1f24")
	lightMuted   = mustHex("#545b66")
	lightBorder  = mustHex("#d3d8df")
	darkSurface  = mustHex("#1a1e25")
	darkText     = mustHex("#e7e9ec")
	darkMuted    = mustHex("#a6adb8")
	darkBorder   = mustHex("#363d48")
	darkPageBg   = mustHex("#0e1115")
	white        = mustHex("#ffffff")
	black        = mustHex("#000000")
)

// brandView is the validated brand handed to templates.
type brandView struct {
	// Title is the display name, never empty.
	Title string
	// Logo is a data: image URI or a same-origin path, or empty.
	Logo template.URL
}

// rgb is an sRGB colour with 0..255 channels.
type rgb struct{ r, g, b float64 }

// parseHex parses #rgb or #rrggbb (case-insensitive). Anything else is
// rejected so that nothing but a plain colour ever reaches the stylesheet.
func parseHex(s string) (rgb, bool) {
	if len(s) != 4 && len(s) != 7 || s[0] != '#' {
		return rgb{}, false
	}
	h := s[1:]
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return rgb{}, false
		}
	}
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return rgb{}, false
	}
	return rgb{float64(v >> 16 & 0xff), float64(v >> 8 & 0xff), float64(v & 0xff)}, true
}

func mustHex(s string) rgb {
	c, ok := parseHex(s)
	if !ok {
		panic("pages: bad built-in colour " + s)
	}
	return c
}

// hex formats c as #rrggbb.
func (c rgb) hex() string {
	ch := func(v float64) uint8 { return uint8(math.Round(math.Max(0, math.Min(255, v)))) }
	return fmt.Sprintf("#%02x%02x%02x", ch(c.r), ch(c.g), ch(c.b))
}

// luminance is the WCAG 2 relative luminance of c.
func (c rgb) luminance() float64 {
	lin := func(v float64) float64 {
		v /= 255
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.r) + 0.7152*lin(c.g) + 0.0722*lin(c.b)
}

// contrast is the WCAG 2 contrast ratio between a and b (1..21).
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// mix returns a blended toward b by t (0 = a, 1 = b).
func mix(a, b rgb, t float64) rgb {
	return rgb{a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t}
}

// ensureContrast changes only the lightness of fg (toward white when
// lighter is true, else toward black) until it reaches target contrast
// against bg, so the brand's hue and saturation survive. It returns fg
// unchanged when it already passes.
func ensureContrast(fg, bg rgb, target float64, lighter bool) rgb {
	h, sat, l := fg.hsl()
	for i := 0; i <= 50; i++ {
		c := fromHSL(h, sat, l)
		if contrast(c, bg) >= target {
			return c
		}
		if lighter {
			l = math.Min(1, l+0.02)
		} else {
			l = math.Max(0, l-0.02)
		}
	}
	if lighter {
		return white
	}
	return black
}

// hsl converts c to hue (0..1), saturation and lightness (0..1).
func (c rgb) hsl() (h, s, l float64) {
	r, g, b := c.r/255, c.g/255, c.b/255
	mx, mn := math.Max(r, math.Max(g, b)), math.Min(r, math.Min(g, b))
	l = (mx + mn) / 2
	if mx == mn {
		return 0, 0, l
	}
	d := mx - mn
	if l > 0.5 {
		s = d / (2 - mx - mn)
	} else {
		s = d / (mx + mn)
	}
	switch mx {
	case r:
		h = (g - b) / d
		if g < b {
			h += 6
		}
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	return h / 6, s, l
}

// fromHSL is the inverse of rgb.hsl.
func fromHSL(h, s, l float64) rgb {
	if s == 0 {
		return rgb{l * 255, l * 255, l * 255}
	}
	q := l * (1 + s)
	if l >= 0.5 {
		q = l + s - l*s
	}
	p := 2*l - q
	hue := func(t float64) float64 {
		switch {
		case t < 0:
			t++
		case t > 1:
			t--
		}
		switch {
		case t < 1.0/6:
			return p + (q-p)*6*t
		case t < 0.5:
			return q
		case t < 2.0/3:
			return p + (q-p)*(2.0/3-t)*6
		}
		return p
	}
	return rgb{hue(h+1.0/3) * 255, hue(h) * 255, hue(h-1.0/3) * 255}
}

// readableOn picks white or dark text, whichever contrasts more with bg;
// dark text is the soft near-black unless only pure black reaches 4.5:1.
func readableOn(bg rgb) rgb {
	if contrast(white, bg) >= contrast(black, bg) {
		return white
	}
	if contrast(lightText, bg) >= 4.5 {
		return lightText
	}
	return black
}

// palette is every colour the stylesheet uses, for one colour scheme.
type palette struct {
	bg, onBg, onBgMuted, surface, text, muted, border, accent, onAccent, link rgb
}

func (p palette) css(b *strings.Builder) {
	fmt.Fprintf(b, "--bg:%s;--on-bg:%s;--on-bg-muted:%s;--surface:%s;--text:%s;--muted:%s;--border:%s;--accent:%s;--on-accent:%s;--link:%s;",
		p.bg.hex(), p.onBg.hex(), p.onBgMuted.hex(), p.surface.hex(), p.text.hex(), p.muted.hex(), p.border.hex(),
		p.accent.hex(), p.onAccent.hex(), p.link.hex())
}

// makePalette derives a palette from the brand colours for one scheme.
func makePalette(primary, bg rgb, dark bool) palette {
	p := palette{bg: bg, accent: primary}
	if dark {
		p.surface, p.text, p.muted, p.border = darkSurface, darkText, darkMuted, darkBorder
		// Links and focus rings must stand out on the dark card.
		// (6:1 rather than 4.5:1: a barely-passing tint reads as disabled).
		p.link = ensureContrast(primary, darkSurface, 6, true)
	} else {
		p.surface, p.text, p.muted, p.border = lightSurface, lightText, lightMuted, lightBorder
		p.link = ensureContrast(primary, lightSurface, 4.5, false)
	}
	// readableOn always reaches 4.5:1 (white or black does on any colour),
	// so the button keeps the exact brand colour.
	p.onAccent = readableOn(primary)
	p.onBg = readableOn(bg)
	p.onBgMuted = ensureContrast(mix(p.onBg, bg, 0.3), bg, 4.5, p.onBg == white)
	return p
}

// styleVars renders the custom properties for light and dark schemes.
func styleVars(primary, bg rgb) string {
	var b strings.Builder
	b.WriteString(":root{color-scheme:light dark;")
	makePalette(primary, bg, false).css(&b)
	b.WriteString("}@media (prefers-color-scheme:dark){:root{")
	// A brand that is already dark keeps its background at night; a light
	// one gives way to a dark page so the screen does not glare.
	darkBg := darkPageBg
	if bg.luminance() < 0.05 {
		darkBg = bg
	}
	makePalette(primary, darkBg, true).css(&b)
	b.WriteString("}}")
	return b.String()
}

// validLogo reports whether u is an acceptable logo reference: a base64
// data: URI of a common image type, or a same-origin absolute path.
// Anything that would make the browser fetch from another origin is refused.
func validLogo(u string) bool {
	if strings.HasPrefix(u, "data:") {
		if len(u) > maxLogoDataURI {
			return false
		}
		meta, data, ok := strings.Cut(u[len("data:"):], ",")
		if !ok {
			return false
		}
		switch strings.ToLower(meta) {
		case "image/png;base64", "image/gif;base64", "image/jpeg;base64", "image/webp;base64", "image/svg+xml;base64":
		default:
			return false
		}
		_, err := base64.StdEncoding.DecodeString(data)
		return err == nil && data != ""
	}
	// Same-origin path: "/x", never "//host" or "/\host" (browsers treat
	// a backslash like a slash), no control characters or spaces.
	if len(u) < 2 || u[0] != '/' || u[1] == '/' || u[1] == '\\' {
		return false
	}
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c == 0x7f || c == '\\' || c == '"' || c == '\'' || c == '<' || c == '>' {
			return false
		}
	}
	pu, err := url.Parse(u)
	return err == nil && pu.Scheme == "" && pu.Host == "" && pu.User == nil
}

// validateBrand turns a policy Brand into what the templates use, plus the
// CSS custom properties, and notes every value it had to ignore.
func validateBrand(b Brand) (brandView, string, []string) {
	var warn []string
	v := brandView{Title: strings.Join(strings.Fields(b.Title), " ")}
	if v.Title == "" {
		v.Title = defaultTitle
	} else if r := []rune(v.Title); len(r) > maxTitleRunes {
		v.Title = string(r[:maxTitleRunes-1]) + "…"
		warn = append(warn, fmt.Sprintf("brand title longer than %d characters was shortened", maxTitleRunes))
	}
	if b.LogoURL != "" {
		if validLogo(b.LogoURL) {
			v.Logo = template.URL(b.LogoURL) // validated above: data:image/… or same-origin path
		} else {
			warn = append(warn, "brand logo ignored: only a base64 data:image URI or a same-origin path starting with \"/\" is allowed")
		}
	}
	color := func(name, val, def string) rgb {
		if val == "" {
			return mustHex(def)
		}
		c, ok := parseHex(val)
		if !ok {
			warn = append(warn, fmt.Sprintf("brand %s %q ignored: use #rgb or #rrggbb", name, val))
			return mustHex(def)
		}
		return c
	}
	primary := color("primary colour", b.PrimaryColor, defaultPrimary)
	bg := color("background colour", b.BackgroundColor, defaultBackground)
	return v, styleVars(primary, bg), warn
}
