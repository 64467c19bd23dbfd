// Command benchrun times whole commands and prints their medians as a ratio
// table. Commands run interleaved, round by round, so that a noisy moment of
// the machine hits every command alike; ratios are against the row named by
// -base, measured in the same run.
//
//	benchrun -n 30 -base bwrap 'true=/bin/true' 'bwrap=bwrap ... /bin/true'
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	n := flag.Int("n", 30, "runs of each command")
	base := flag.String("base", "", "name of the row ratios are taken against")
	markdown := flag.Bool("markdown", false, "print a Markdown table")
	fd3 := flag.String("fd3", "", "file opened afresh for each run and passed as fd 3 (bwrap --seccomp 3)")
	flag.Parse()
	type row struct {
		name string
		argv []string
		runs []time.Duration
	}
	var rows []*row
	for _, a := range flag.Args() {
		name, cmdline, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "benchrun: error: %q: want NAME=COMMAND\n", a)
			os.Exit(2)
		}
		rows = append(rows, &row{name: name, argv: strings.Fields(cmdline)})
	}
	// One untimed round warms caches and checks every command works.
	for _, r := range rows {
		cmd := exec.Command(r.argv[0], r.argv[1:]...)
		if *fd3 != "" {
			f, err := os.Open(*fd3)
			if err != nil {
				fmt.Fprintf(os.Stderr, "benchrun: error: %v\n", err)
				os.Exit(1)
			}
			cmd.ExtraFiles = []*os.File{f}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "benchrun: error: %s: %v\n%s", r.name, err, out)
			os.Exit(1)
		}
	}
	for i := 0; i < *n; i++ {
		for _, r := range rows {
			cmd := exec.Command(r.argv[0], r.argv[1:]...)
			if *fd3 != "" {
				f, err := os.Open(*fd3)
				if err != nil {
					fmt.Fprintf(os.Stderr, "benchrun: error: %v\n", err)
					os.Exit(1)
				}
				defer f.Close()
				cmd.ExtraFiles = []*os.File{f}
			}
			start := time.Now()
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "benchrun: error: %s: %v\n", r.name, err)
				os.Exit(1)
			}
			r.runs = append(r.runs, time.Since(start))
		}
	}
	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	var baseMedian time.Duration
	for _, r := range rows {
		if r.name == *base {
			baseMedian = median(r.runs)
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	header := []string{"command", "median ms", "p10 ms", "p90 ms", "ratio to " + *base}
	var lines [][]string
	for _, r := range rows {
		s := slices.Clone(r.runs)
		slices.Sort(s)
		m := median(r.runs)
		ratio := "-"
		if baseMedian > 0 {
			ratio = fmt.Sprintf("%.2f", float64(m)/float64(baseMedian))
		}
		lines = append(lines, []string{r.name, ms(m), ms(s[len(s)/10]), ms(s[len(s)*9/10]), ratio})
	}
	if *markdown {
		fmt.Println("| " + strings.Join(header, " | ") + " |")
		fmt.Println("|" + strings.Repeat("---|", len(header)))
		for _, l := range lines {
			fmt.Println("| " + strings.Join(l, " | ") + " |")
		}
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l, "\t")+"\t")
	}
	tw.Flush()
	fmt.Printf("(%d interleaved runs each)\n", *n)
}
