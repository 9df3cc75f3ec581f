// Command checker cross-checks receipt's transparency-log code (common/merkle,
// tiles, note, checkpoint) with Go's golang.org/x/mod/sumdb/tlog and
// sumdb/note, which hash, tile and sign the same way: it runs the C program
// tlog_interop on a batch of requests, compares every answer with what Go
// computes, and gives Go's own proofs and notes to the C code to verify.
// It prints TAP ("ok N - ..." / "not ok N - ...") and exits non-zero if
// anything disagrees.
//
// Usage: checker -tool build/tests/interop/tlog_interop
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	tool    = flag.String("tool", "", "path of the tlog_interop program")
	testNum = 0
	failed  = 0
)

// report prints one TAP line for a named check with its problems, if any.
func report(name string, problems []string) {
	testNum++
	if len(problems) == 0 {
		fmt.Printf("ok %d - %s\n", testNum, name)
		return
	}
	failed++
	fmt.Printf("not ok %d - %s\n", testNum, name)
	for i, p := range problems {
		if i == 10 {
			fmt.Printf("#   ... and %d more\n", len(problems)-10)
			break
		}
		fmt.Printf("#   %s\n", p)
	}
}

// batch runs the C tool on the requests and returns one answer per request.
func batch(requests []string) []string {
	cmd := exec.Command(*tool)
	cmd.Stdin = strings.NewReader(strings.Join(requests, "\n") + "\n")
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		fmt.Printf("Bail out! %s failed: %v\n%s", *tool, err, errOut.String())
		os.Exit(1)
	}
	answers := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(answers) != len(requests) {
		fmt.Printf("Bail out! %d answers to %d requests\n", len(answers), len(requests))
		os.Exit(1)
	}
	return answers
}

func record(i int64) []byte { return []byte(fmt.Sprintf("record %d\n", i)) }

// goLog is Go's own log of the same records.
type goLog struct{ stored []tlog.Hash }

func (l *goLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(l.stored)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = l.stored[x]
	}
	return out, nil
}

func newGoLog(n int64) *goLog {
	l := &goLog{}
	for i := int64(0); i < n; i++ {
		hs, err := tlog.StoredHashes(i, record(i), l)
		if err != nil {
			panic(err)
		}
		l.stored = append(l.stored, hs...)
	}
	return l
}

func hashHex(h tlog.Hash) string { return hex.EncodeToString(h[:]) }

func proofText(p []tlog.Hash) string {
	words := make([]string, len(p))
	for i, h := range p {
		words[i] = hashHex(h)
	}
	return strings.Join(words, " ")
}

func parseProof(s string) ([]tlog.Hash, error) {
	var out []tlog.Hash
	for _, w := range strings.Fields(s) {
		b, err := hex.DecodeString(w)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("bad hash %q", w)
		}
		var h tlog.Hash
		copy(h[:], b)
		out = append(out, h)
	}
	return out, nil
}

func b64(s []byte) string { return base64.StdEncoding.EncodeToString(s) }

// checkTree compares stored hashes, tree heads and proofs on a log of n records.
func checkTree(n int64, exhaustive int64, samples int) {
	gl := newGoLog(n)
	rng := mrand.New(mrand.NewSource(n))
	req := []string{fmt.Sprintf("leaves %d", n)}
	for i := range gl.stored {
		req = append(req, fmt.Sprintf("stored %d", i))
	}
	for s := int64(0); s <= n; s++ {
		req = append(req, fmt.Sprintf("root %d", s))
	}
	type pair struct{ a, b int64 }
	var incl, cons []pair
	for t := int64(1); t <= exhaustive && t <= n; t++ {
		for i := int64(0); i < t; i++ {
			incl = append(incl, pair{i, t})
			cons = append(cons, pair{i + 1, t})
		}
	}
	for k := 0; k < samples; k++ {
		t := 1 + rng.Int63n(n)
		incl = append(incl, pair{rng.Int63n(t), t})
		cons = append(cons, pair{1 + rng.Int63n(t), t})
	}
	for _, p := range incl {
		req = append(req, fmt.Sprintf("incl %d %d", p.a, p.b))
	}
	for _, p := range cons {
		req = append(req, fmt.Sprintf("cons %d %d", p.a, p.b))
	}
	// Go's proofs for the C code to verify, and the same proofs spoiled.
	type verdict struct {
		what string
		want bool
	}
	var verdicts []verdict
	for k, p := range incl {
		th, _ := tlog.TreeHash(p.b, gl)
		proof, err := tlog.ProveRecord(p.b, p.a, gl)
		if err != nil {
			panic(err)
		}
		leaf := tlog.RecordHash(record(p.a))
		req = append(req, fmt.Sprintf("vincl %d %d %s %s %s", p.a, p.b, hashHex(leaf), hashHex(th), proofText(proof)))
		verdicts = append(verdicts, verdict{fmt.Sprintf("Go's inclusion proof of %d in %d", p.a, p.b), true})
		if len(proof) > 0 && k%3 == 0 {
			bad := append([]tlog.Hash(nil), proof...)
			bad[k%len(bad)][k%32] ^= 0x40
			req = append(req, fmt.Sprintf("vincl %d %d %s %s %s", p.a, p.b, hashHex(leaf), hashHex(th), proofText(bad)))
			verdicts = append(verdicts, verdict{fmt.Sprintf("a spoiled inclusion proof of %d in %d", p.a, p.b), false})
		}
	}
	for k, p := range cons {
		th1, _ := tlog.TreeHash(p.a, gl)
		th2, _ := tlog.TreeHash(p.b, gl)
		proof, err := tlog.ProveTree(p.b, p.a, gl)
		if err != nil {
			panic(err)
		}
		req = append(req, fmt.Sprintf("vcons %d %d %s %s %s", p.a, p.b, hashHex(th1), hashHex(th2), proofText(proof)))
		verdicts = append(verdicts, verdict{fmt.Sprintf("Go's consistency proof from %d to %d", p.a, p.b), true})
		if len(proof) > 0 && k%3 == 0 {
			bad := append([]tlog.Hash(nil), proof...)
			bad[k%len(bad)][31-k%32] ^= 0x01
			req = append(req, fmt.Sprintf("vcons %d %d %s %s %s", p.a, p.b, hashHex(th1), hashHex(th2), proofText(bad)))
			verdicts = append(verdicts, verdict{fmt.Sprintf("a spoiled consistency proof from %d to %d", p.a, p.b), false})
		}
	}

	ans := batch(req)
	pos := 1
	var problems []string
	for i, h := range gl.stored {
		if ans[pos] != hashHex(h) {
			problems = append(problems, fmt.Sprintf("stored hash %d: C %s, Go %s", i, ans[pos], hashHex(h)))
		}
		pos++
	}
	report(fmt.Sprintf("%d records: the C log stores the same %d hashes, in the same order, as Go's tlog.StoredHashes", n, len(gl.stored)), problems)

	problems = nil
	for s := int64(0); s <= n; s++ {
		th, err := tlog.TreeHash(s, gl)
		if err != nil {
			panic(err)
		}
		if s == 0 {
			th = tlog.Hash{} // Go has no hash for the empty tree; RFC 9162's is SHA-256("")
			if ans[pos] != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
				problems = append(problems, "the empty tree's hash: "+ans[pos])
			}
		} else if ans[pos] != hashHex(th) {
			problems = append(problems, fmt.Sprintf("tree head %d: C %s, Go %s", s, ans[pos], hashHex(th)))
		}
		pos++
	}
	report(fmt.Sprintf("%d records: C tree heads of every size 0..%d equal Go's tlog.TreeHash", n, n), problems)

	problems = nil
	for _, p := range incl {
		proof, _ := tlog.ProveRecord(p.b, p.a, gl)
		got, err := parseProof(ans[pos])
		th, _ := tlog.TreeHash(p.b, gl)
		if err != nil || proofText(got) != proofText(proof) {
			problems = append(problems, fmt.Sprintf("inclusion %d in %d: C %q, Go %q", p.a, p.b, ans[pos], proofText(proof)))
		} else if err := tlog.CheckRecord(got, p.b, th, p.a, tlog.RecordHash(record(p.a))); err != nil {
			problems = append(problems, fmt.Sprintf("Go refuses the C inclusion proof of %d in %d: %v", p.a, p.b, err))
		}
		pos++
	}
	report(fmt.Sprintf("%d records: %d C inclusion proofs equal Go's tlog.ProveRecord and pass tlog.CheckRecord", n, len(incl)), problems)

	problems = nil
	for _, p := range cons {
		proof, _ := tlog.ProveTree(p.b, p.a, gl)
		got, err := parseProof(ans[pos])
		th1, _ := tlog.TreeHash(p.a, gl)
		th2, _ := tlog.TreeHash(p.b, gl)
		if err != nil || proofText(got) != proofText(proof) {
			problems = append(problems, fmt.Sprintf("consistency %d to %d: C %q, Go %q", p.a, p.b, ans[pos], proofText(proof)))
		} else if err := tlog.CheckTree(got, p.b, th2, p.a, th1); err != nil {
			problems = append(problems, fmt.Sprintf("Go refuses the C consistency proof %d to %d: %v", p.a, p.b, err))
		}
		pos++
	}
	report(fmt.Sprintf("%d records: %d C consistency proofs equal Go's tlog.ProveTree and pass tlog.CheckTree", n, len(cons)), problems)

	problems = nil
	good, spoiled := 0, 0
	for _, v := range verdicts {
		ok := ans[pos] == "ok"
		if ok != v.want {
			problems = append(problems, fmt.Sprintf("%s: C says %q", v.what, ans[pos]))
		}
		if v.want {
			good++
		} else {
			spoiled++
		}
		pos++
	}
	report(fmt.Sprintf("%d records: the C verifier accepts Go's %d proofs and refuses %d spoiled ones", n, good, spoiled), problems)
}

// memTiles serves the C log's tiles to Go's tlog.TileHashReader.
type memTiles map[string][]byte

func (m memTiles) Height() int { return 8 }
func (m memTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		d, ok := m[t.Path()]
		if !ok {
			return nil, fmt.Errorf("no tile %s", t.Path())
		}
		out[i] = d
	}
	return out, nil
}
func (m memTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// c2spPath is Go's tile path without the height element ("tile/8/0/..." is "tile/0/...").
func c2spPath(t tlog.Tile) string {
	p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

// checkTiles compares tiles, paths and bundles, and lets Go authenticate the C tiles.
func checkTiles(n int64) {
	gl := newGoLog(n)
	all := tlog.NewTiles(8, 0, n)
	// NewTiles lists every partial width up to the last; the published ones are the last of each level.
	var tiles []tlog.Tile
	for i, t := range all {
		if t.W == 256 || i+1 == len(all) || all[i+1].L != t.L {
			tiles = append(tiles, t)
		}
	}
	req := []string{fmt.Sprintf("leaves %d", n), fmt.Sprintf("grown 0 %d", n)}
	for _, t := range tiles {
		req = append(req, fmt.Sprintf("path %d %d %d", t.L, t.N, t.W), fmt.Sprintf("tile %d %d %d", t.L, t.N, t.W))
		if t.L == 0 {
			req = append(req, fmt.Sprintf("path -1 %d %d", t.N, t.W), fmt.Sprintf("bundle %d %d", t.N, t.W))
		}
	}
	ans := batch(req)

	var problems []string
	var want []string
	for _, t := range tiles {
		want = append(want, fmt.Sprintf("%d/%d/%d", t.L, t.N, t.W))
	}
	if ans[1] != strings.Join(want, " ") {
		problems = append(problems, fmt.Sprintf("C %q, Go %q", ans[1], strings.Join(want, " ")))
	}
	report(fmt.Sprintf("%d records: the tiles that exist are those of Go's tlog.NewTiles", n), problems)

	problems = nil
	served := memTiles{}
	pos := 2
	for _, t := range tiles {
		if ans[pos] != c2spPath(t) {
			problems = append(problems, fmt.Sprintf("path: C %q, Go %q", ans[pos], t.Path()))
		}
		data, err := tlog.ReadTileData(t, gl)
		if err != nil {
			panic(err)
		}
		got, _ := hex.DecodeString(ans[pos+1])
		if !bytes.Equal(got, data) {
			problems = append(problems, fmt.Sprintf("tile %s differs", t.Path()))
		}
		served[t.Path()] = got
		pos += 2
		if t.L == 0 {
			dt := tlog.Tile{H: 8, L: -1, N: t.N, W: t.W}
			if ans[pos] != c2spPath(dt) {
				problems = append(problems, fmt.Sprintf("bundle path: C %q, Go %q", ans[pos], dt.Path()))
			}
			bundle, _ := hex.DecodeString(ans[pos+1])
			for i := 0; i < t.W; i++ {
				if len(bundle) < 2 || len(bundle) < 2+int(bundle[0])<<8|int(bundle[1]) {
					problems = append(problems, fmt.Sprintf("bundle %d truncated", t.N))
					break
				}
				l := int(bundle[0])<<8 | int(bundle[1])
				h := tlog.RecordHash(bundle[2 : 2+l])
				if !bytes.Equal(h[:], got[i*32:(i+1)*32]) {
					problems = append(problems, fmt.Sprintf("bundle %d entry %d does not hash to its tile's leaf", t.N, i))
				}
				bundle = bundle[2+l:]
			}
			if len(bundle) != 0 {
				problems = append(problems, fmt.Sprintf("bundle %d has trailing bytes", t.N))
			}
			pos += 2
		}
	}
	report(fmt.Sprintf("%d records: %d C tiles and paths equal Go's tlog.ReadTileData and Tile.Path; bundles hash to level-0 tiles", n, len(tiles)), problems)

	// Go authenticates the C tiles against the tree head, then proves from them.
	problems = nil
	th, _ := tlog.TreeHash(n, gl)
	hr := tlog.TileHashReader(tlog.Tree{N: n, Hash: th}, served)
	for _, i := range []int64{0, 1, 255, 256, 65535, 65536, n - 1} {
		p, err := tlog.ProveRecord(n, i, hr)
		if err == nil {
			err = tlog.CheckRecord(p, n, th, i, tlog.RecordHash(record(i)))
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("record %d: %v", i, err))
		}
	}
	for _, m := range []int64{1, 256, 65536, n - 1} {
		p, err := tlog.ProveTree(n, m, hr)
		if err == nil {
			old, _ := tlog.TreeHash(m, gl)
			err = tlog.CheckTree(p, n, th, m, old)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("tree %d: %v", m, err))
		}
	}
	report(fmt.Sprintf("%d records: Go's tlog.TileHashReader authenticates the C tiles against the tree head and proves from them", n), problems)
}

// checkNotes signs with each side and opens with the other.
func checkNotes() {
	goSkey, goVkey, err := note.GenerateKey(rand.Reader, "interop.example/go")
	if err != nil {
		panic(err)
	}
	otherSkey, otherVkey, _ := note.GenerateKey(rand.Reader, "witness.example/other")
	goSigner, _ := note.NewSigner(goSkey)
	otherSigner, _ := note.NewSigner(otherSkey)
	text := "interop.example/go\n42\n" + b64(make([]byte, 32)) + "\n"
	goNote, _ := note.Sign(&note.Note{Text: text}, goSigner)
	bothNote, _ := note.Sign(&note.Note{Text: text}, goSigner, otherSigner)
	spoiled := []byte(string(goNote))
	spoiled[3] ^= 1

	root := tlog.Hash{1, 2, 3}
	goTree := tlog.FormatTree(tlog.Tree{N: 1234567, Hash: root})

	req := []string{
		"genkey interop.example/c",
		fmt.Sprintf("sign %s %s", goSkey, b64([]byte(text))),
		fmt.Sprintf("open %s %s", b64(goNote), goVkey),
		fmt.Sprintf("open %s %s", b64(bothNote), goVkey),
		fmt.Sprintf("open %s %s %s", b64(bothNote), otherVkey, goVkey),
		fmt.Sprintf("open %s %s", b64(spoiled), goVkey),
		fmt.Sprintf("open %s %s", b64(goNote), otherVkey),
		fmt.Sprintf("cparse %s", b64(goTree)),
		fmt.Sprintf("checkpoint interop.example/c 1234567 %s", hashHex(root)),
	}
	ans := batch(req)

	// Keys made by C work in Go, and Go's signature with them opens in C.
	var problems []string
	words := strings.Fields(ans[0])
	var cVkey string
	if len(words) != 2 {
		problems = append(problems, "genkey: "+ans[0])
	} else {
		cSigner, err1 := note.NewSigner(words[0])
		cVerifier, err2 := note.NewVerifier(words[1])
		cVkey = words[1]
		if err1 != nil || err2 != nil {
			problems = append(problems, fmt.Sprintf("Go refuses the C key texts: %v %v", err1, err2))
		} else if cSigner.KeyHash() != cVerifier.KeyHash() || cSigner.Name() != "interop.example/c" {
			problems = append(problems, "the C signer and verifier keys disagree in Go")
		}
	}
	report("key texts made by C (signer and verifier) are accepted by Go's note.NewSigner and NewVerifier", problems)

	problems = nil
	cNote, _ := base64.StdEncoding.DecodeString(ans[1])
	if !bytes.Equal(cNote, goNote) {
		problems = append(problems, fmt.Sprintf("C signs %q, Go %q", cNote, goNote))
	}
	v, _ := note.NewVerifier(goVkey)
	if n, err := note.Open(cNote, note.VerifierList(v)); err != nil || n.Text != text {
		problems = append(problems, fmt.Sprintf("Go refuses the C note: %v", err))
	}
	report("a note signed by C with a Go key is byte for byte Go's, and opens with Go's note.Open", problems)

	problems = nil
	want := []string{
		"ok " + b64([]byte(text)) + " 0 1",
		"ok " + b64([]byte(text)) + " 1 1",
		"ok " + b64([]byte(text)) + " 0 11",
	}
	for i, w := range want {
		if ans[2+i] != w {
			problems = append(problems, fmt.Sprintf("open %d: C %q, want %q", i, ans[2+i], w))
		}
	}
	if !strings.HasPrefix(ans[5], "fail") {
		problems = append(problems, "C opens a spoiled Go note: "+ans[5])
	}
	if ans[6] != "fail no signature by a known key" {
		problems = append(problems, "C opens a Go note with an unrelated key: "+ans[6])
	}
	report("C opens Go's notes (one or two signers, unknown signers ignored) and refuses spoiled or unverifiable ones", problems)

	// Go signs with a key made by C; C opens it.
	problems = nil
	if cVkey != "" {
		cSigner, _ := note.NewSigner(words[0])
		n2, _ := note.Sign(&note.Note{Text: "made by Go\n"}, cSigner)
		a := batch([]string{fmt.Sprintf("open %s %s", b64(n2), cVkey)})
		if a[0] != "ok "+b64([]byte("made by Go\n"))+" 0 1" {
			problems = append(problems, "C refuses Go's signature with the C key: "+a[0])
		}
	} else {
		problems = append(problems, "no C key")
	}
	report("a note signed by Go with a key made by C opens in C", problems)

	problems = nil
	if ans[7] != b64([]byte("go.sum database tree"))+" 1234567 "+hashHex(root) {
		problems = append(problems, "C parses Go's tree note as "+ans[7])
	}
	body, _ := base64.StdEncoding.DecodeString(ans[8])
	lines := strings.Split(string(body), "\n")
	if len(lines) != 4 || lines[0] != "interop.example/c" || lines[1] != "1234567" ||
		lines[2] != root.String() || lines[3] != "" {
		problems = append(problems, fmt.Sprintf("C checkpoint %q", body))
	}
	if _, err := strconv.ParseInt(lines[1], 10, 64); err != nil {
		problems = append(problems, "size line: "+err.Error())
	}
	report("checkpoint bodies: C parses Go's tlog.FormatTree, and writes origin, size and root as Go does", problems)
}

func main() {
	flag.Parse()
	if *tool == "" {
		fmt.Println("Bail out! -tool is required")
		os.Exit(2)
	}
	checkTree(1100, 40, 3000)
	checkTiles(70000)
	checkNotes()
	fmt.Printf("1..%d\n", testNum)
	if failed > 0 {
		os.Exit(1)
	}
}
