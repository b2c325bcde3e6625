package imapd

// Sequence sets (RFC 9051 sequence-set): "1:5,7,9:*", and "$" for the result saved by
// SEARCH RETURN (SAVE) (RFC 5182 SEARCHRES).

import "strconv"

// SeqRange is one element of a sequence set: a number (Start == Stop) or a range. 0 stands
// for "*", the largest number in use; message numbers and UIDs start at 1 (RFC 9051 §2.3.1).
// A range may be written either way round ("5:1" is "1:5", RFC 9051 seq-range).
type SeqRange struct {
	Start, Stop uint32
}

// SeqSet is a parsed sequence set.
type SeqSet struct {
	Ranges    []SeqRange
	SearchRes bool // "$": the saved search result (RFC 5182 §2.1)
}

// Bounds returns r with "*" replaced by max and its ends in order.
func (r SeqRange) Bounds(max uint32) (lo, hi uint32) {
	lo, hi = r.Start, r.Stop
	if lo == 0 {
		lo = max
	}
	if hi == 0 {
		hi = max
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

// Contains reports whether n is in the set, "*" standing for max. It is false for a "$" set.
func (s SeqSet) Contains(n, max uint32) bool {
	for _, r := range s.Ranges {
		if lo, hi := r.Bounds(max); lo <= n && n <= hi {
			return true
		}
	}
	return false
}

// String formats the set as the grammar writes it.
func (s SeqSet) String() string {
	if s.SearchRes {
		return "$"
	}
	var b []byte
	for i, r := range s.Ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeqNum(b, r.Start)
		if r.Stop != r.Start {
			b = append(b, ':')
			b = appendSeqNum(b, r.Stop)
		}
	}
	return string(b)
}

func appendSeqNum(b []byte, n uint32) []byte {
	if n == 0 {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(n), 10)
}

// seqSet reads a sequence set; at most Limits.MaxSeqRanges ranges.
func (r *reader) seqSet() (SeqSet, error) {
	if r.peek() == '$' {
		r.pos++
		return SeqSet{SearchRes: true}, nil
	}
	var s SeqSet
	for {
		if len(s.Ranges) >= r.lim.MaxSeqRanges {
			return SeqSet{}, badf("Sequence set too long")
		}
		start, err := r.seqNum()
		if err != nil {
			return SeqSet{}, err
		}
		stop := start
		if r.peek() == ':' {
			r.pos++
			if stop, err = r.seqNum(); err != nil {
				return SeqSet{}, err
			}
		}
		s.Ranges = append(s.Ranges, SeqRange{start, stop})
		if r.peek() != ',' {
			return s, nil
		}
		r.pos++
	}
}

// seqNum reads nz-number or "*" (returned as 0).
func (r *reader) seqNum() (uint32, error) {
	if r.peek() == '*' {
		r.pos++
		return 0, nil
	}
	if c := r.peek(); c < '0' || c > '9' {
		return 0, badf("Bad sequence set")
	}
	return r.nzNumber()
}
