// Command logcheck audits a running receiptd's evidence log with Go's
// golang.org/x/mod/sumdb/tlog and sumdb/note alone, as an independent
// tlog-tiles client would: it fetches the checkpoint and opens it with the
// verifier key, reads the tree through tiles that tlog authenticates against
// the checkpoint, rebuilds the tree from the entry bundles, and checks each
// proof given on standard input (one JSON object per line, the "proof"
// member of a confirmation's answer): the commitment, the inclusion proof in
// the proof's own checkpoint (one proof in ten also made again from the
// tiles of that checkpoint's tree, as a client that holds only it reads
// them: partial tiles of its widths among them), and that checkpoint's
// consistency with the newest one.
//
// With -chain OLDKEY it also follows the log's key changes (GET keys) from
// OLDKEY to -key: each change after the one that named OLDKEY replaces the
// key reached so far, its checkpoint carries a verified signature by both
// keys (note.Open with both, each among the signatures), its leaf is in that
// checkpoint's tree and in the newest, and that checkpoint is consistent
// with the newest.
//
// It prints one line per check, "ok ..." or "not ok ...: why", and exits 1
// when any check failed.
//
// Usage: logcheck -url http://127.0.0.1:8080 -key 'name+id+key' [-chain 'name+id+key'] < proofs
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	base    = flag.String("url", "", "the server's base URL")
	keyText = flag.String("key", "", "the log's verifier key")
	chain   = flag.String("chain", "", "an older verifier key of the log, to follow to -key")
	failed  = false
)

func check(name string, err error) bool {
	if err != nil {
		failed = true
		fmt.Printf("not ok %s: %v\n", name, err)
		return false
	}
	fmt.Printf("ok %s\n", name)
	return true
}

func get(path string) ([]byte, error) {
	resp, err := http.Get(strings.TrimSuffix(*base, "/") + "/_receipt/log/" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return body, nil
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

// openCheckpoint verifies a signed checkpoint (C2SP tlog-checkpoint) with
// the verifier and parses its text.
func openCheckpoint(msg []byte, v note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return checkpoint{}, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, errors.New("a checkpoint has three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("bad size %q", lines[1])
	}
	hash, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, err
	}
	return checkpoint{origin: lines[0], tree: tlog.Tree{N: size, Hash: hash}}, nil
}

// tiles fetches tlog-tiles paths (tile/<L>/<N>, no height in the path).
// Full tiles never change, so each is fetched once: thousands of proofs
// share the few tiles near the root.
type tiles struct {
	fetched int
	full    map[tlog.Tile][]byte
}

func (t *tiles) Height() int { return 8 }

func c2spPath(tile tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(strings.Replace(tile.Path(), "/data/", "/entries/", 1), "tile/8/")
}

func (t *tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(list))
	for i, tile := range list {
		if data, ok := t.full[tile]; ok {
			out[i] = data
			continue
		}
		data, err := get(c2spPath(tile))
		if err != nil {
			return nil, err
		}
		t.fetched++
		if tile.W == 1<<tile.H {
			t.full[tile] = data
		}
		out[i] = data
	}
	return out, nil
}

func (t *tiles) SaveTiles([]tlog.Tile, [][]byte) {}

type proof struct {
	Index int64 `json:"index"`
	Leaf  struct {
		Salt  string `json:"salt"`
		Event string `json:"event"`
	} `json:"leaf"`
	Hashes     []string `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`
}

func checkProof(line []byte, v note.Verifier, newest checkpoint, reader tlog.HashReader, tr *tiles, own bool) error {
	var p proof
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	cp, err := openCheckpoint([]byte(p.Checkpoint), v)
	if err != nil {
		return fmt.Errorf("its checkpoint: %v", err)
	}
	salt, err := base64.RawURLEncoding.DecodeString(p.Leaf.Salt)
	if err != nil || len(salt) != 32 {
		return errors.New("the salt is not 32 bytes of base64url")
	}
	commitment := sha256.Sum256(append(salt, []byte(p.Leaf.Event)...))
	rp, err := recordProof(p)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(rp, cp.tree.N, cp.tree.Hash, p.Index, tlog.RecordHash(commitment[:])); err != nil {
		return fmt.Errorf("inclusion in its checkpoint: %v", err)
	}
	// As a client that holds only this proof's checkpoint reads the log:
	// the tiles of its tree, partial ones of its widths among them, which
	// tlog-tiles requires a log to keep serving (or their full tiles).
	if own {
		rp1, err := tlog.ProveRecord(cp.tree.N, p.Index, tlog.TileHashReader(cp.tree, tr))
		if err != nil {
			return fmt.Errorf("the tiles of its checkpoint's tree: %v", err)
		}
		if fmt.Sprint(rp1) != fmt.Sprint(rp) {
			return errors.New("its hashes are not the proof the tiles of its tree make")
		}
	}
	if cp.tree.N > newest.tree.N {
		return fmt.Errorf("its checkpoint (%d) is newer than the newest (%d)", cp.tree.N, newest.tree.N)
	}
	return stillInNewest(cp, newest, p.Index, tlog.RecordHash(commitment[:]), reader)
}

// recordProof parses a proof's hashes.
func recordProof(p proof) (tlog.RecordProof, error) {
	var rp tlog.RecordProof
	for _, h := range p.Hashes {
		hash, err := tlog.ParseHash(h)
		if err != nil {
			return nil, err
		}
		rp = append(rp, hash)
	}
	return rp, nil
}

// stillInNewest checks, from the tiles of the newest tree, that cp is
// consistent with it and that leaf index is in it.
func stillInNewest(cp, newest checkpoint, index int64, leaf tlog.Hash, reader tlog.HashReader) error {
	tp, err := tlog.ProveTree(newest.tree.N, cp.tree.N, reader)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(tp, newest.tree.N, newest.tree.Hash, cp.tree.N, cp.tree.Hash); err != nil {
		return fmt.Errorf("consistency with the newest checkpoint: %v", err)
	}
	// The same leaf, proved again from the tiles in the newest tree.
	rp2, err := tlog.ProveRecord(newest.tree.N, index, reader)
	if err != nil {
		return err
	}
	return tlog.CheckRecord(rp2, newest.tree.N, newest.tree.Hash, index, leaf)
}

func main() {
	flag.Parse()
	v, err := note.NewVerifier(*keyText)
	if err != nil {
		fmt.Printf("not ok verifier key: %v\n", err)
		os.Exit(1)
	}
	served, err := get("key")
	check("the served key is the pinned one", func() error {
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(served)) != *keyText {
			return fmt.Errorf("served %q", served)
		}
		return nil
	}())
	msg, err := get("checkpoint")
	if err != nil {
		check("checkpoint", err)
		os.Exit(1)
	}
	newest, err := openCheckpoint(msg, v)
	if !check("the checkpoint opens with the key", err) {
		os.Exit(1)
	}
	if newest.origin != v.Name() {
		check("origin", fmt.Errorf("%q is not the key's name %q", newest.origin, v.Name()))
	}
	tr := &tiles{full: map[tlog.Tile][]byte{}}
	reader := tlog.TileHashReader(newest.tree, tr)
	root, err := tlog.TreeHash(newest.tree.N, reader)
	if check(fmt.Sprintf("tree head of %d leaves from the tiles", newest.tree.N), err) && root != newest.tree.Hash {
		check("tree head", errors.New("differs from the checkpoint"))
	}

	// The tree rebuilt from the entry bundles alone.
	var stored []tlog.Hash
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	rebuild := func() error {
		for n := int64(0); n*256 < newest.tree.N; n++ {
			w := newest.tree.N - n*256
			if w > 256 {
				w = 256
			}
			tile := tlog.Tile{H: 8, L: -1, N: n, W: int(w)}
			data, err := get(c2spPath(tile))
			if err != nil {
				return err
			}
			for k := int64(0); k < w; k++ {
				if len(data) < 2 {
					return fmt.Errorf("bundle %d is short", n)
				}
				l := int(binary.BigEndian.Uint16(data))
				if len(data) < 2+l {
					return fmt.Errorf("bundle %d is truncated", n)
				}
				made, err := tlog.StoredHashes(n*256+k, data[2:2+l], hashes)
				if err != nil {
					return err
				}
				stored = append(stored, made...)
				data = data[2+l:]
			}
			if len(data) != 0 {
				return fmt.Errorf("bundle %d has more than %d entries", n, w)
			}
		}
		th, err := tlog.TreeHash(newest.tree.N, hashes)
		if err != nil {
			return err
		}
		if th != newest.tree.Hash {
			return errors.New("the root differs from the checkpoint's")
		}
		return nil
	}
	check("the tree rebuilt from the entry bundles is the checkpoint's", rebuild())

	if *chain != "" {
		followChain(*chain, newest, reader)
	}

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 1024*1024)
	count := 0
	for in.Scan() {
		if len(bytes.TrimSpace(in.Bytes())) == 0 {
			continue
		}
		count++
		// One proof in ten is also proved again from its own tree's tiles.
		check(fmt.Sprintf("proof %d", count), checkProof(in.Bytes(), v, newest, reader, tr, count%10 == 1))
	}
	fmt.Printf("# %d proofs, %d tiles fetched\n", count, tr.fetched)
	if failed {
		os.Exit(1)
	}
}

// followChain checks the log's key changes from the key old to v, each
// announced under both keys and part of the newest tree.
func followChain(old string, newest checkpoint, reader tlog.HashReader) {
	body, err := get("keys")
	if !check("the key changes", err) {
		return
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if !check("the key changes are JSON", json.Unmarshal(body, &doc)) {
		return
	}
	trusted, reached, links := old, false, 0
	for i, raw := range doc.Keys {
		var p proof
		var event struct {
			Type     string `json:"type"`
			Key      string `json:"key"`
			Previous string `json:"previous"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || json.Unmarshal([]byte(p.Leaf.Event), &event) != nil || event.Type != "log_key" {
			check(fmt.Sprintf("key change %d", i+1), errors.New("not a proof of a log_key leaf"))
			return
		}
		if !reached {
			reached = event.Key == old
			continue
		}
		links++
		check(fmt.Sprintf("key change %d (leaf %d)", links, p.Index), func() error {
			if event.Previous != trusted {
				return fmt.Errorf("it replaces %q, not the key reached so far %q", event.Previous, trusted)
			}
			before, err1 := note.NewVerifier(event.Previous)
			after, err2 := note.NewVerifier(event.Key)
			if err1 != nil || err2 != nil {
				return errors.New("not verifier keys")
			}
			n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(before, after))
			if err != nil {
				return err
			}
			signed := map[uint32]bool{}
			for _, sig := range n.Sigs {
				signed[sig.Hash] = true
			}
			if !signed[before.KeyHash()] || !signed[after.KeyHash()] {
				return fmt.Errorf("its checkpoint is signed by %d of the two keys", len(n.Sigs))
			}
			cp, err := openCheckpoint([]byte(p.Checkpoint), after)
			if err != nil {
				return err
			}
			salt, err := base64.RawURLEncoding.DecodeString(p.Leaf.Salt)
			if err != nil {
				return err
			}
			commitment := sha256.Sum256(append(salt, []byte(p.Leaf.Event)...))
			leaf := tlog.RecordHash(commitment[:])
			rp, err := recordProof(p)
			if err != nil {
				return err
			}
			if err := tlog.CheckRecord(rp, cp.tree.N, cp.tree.Hash, p.Index, leaf); err != nil {
				return fmt.Errorf("its leaf in its checkpoint: %v", err)
			}
			return stillInNewest(cp, newest, p.Index, leaf, reader)
		}())
		trusted = event.Key
	}
	check("the chain reaches the key", func() error {
		if !reached || trusted != *keyText {
			return fmt.Errorf("it reaches %q", trusted)
		}
		return nil
	}())
}
