#!/usr/bin/env bash
# The layering check of the hub's code (part of scripts/test.sh, step 2):
#
#   - nothing under server/src/domain/ uses crate::storage, crate::transport, crate::export,
#     tonic or sqlx: the domain knows neither how data is kept nor how calls arrive (its
#     records are plain types; storage says how a row fills them);
#   - nothing under server/src/transport/ or server/src/console/ uses crate::storage: calls and
#     pages reach storage only through the domain's services and ports;
#   - server/src/read_model.rs and read_model/ (what sits in front of a backend's register port) use the
#     ports alone: no crate::storage, crate::transport, tonic or sqlx;
#   - nothing under server/src/ uses telesub_client: the hub shares formats with its clients
#     through telesub_proto, and never depends on the client SDK (nor does server/Cargo.toml
#     name it);
#   - each port (a trait under server/src/domain/ports/) has at most 15 methods; their
#     counts are printed.
#
# It reads the code as text: every `use` tree is expanded to full paths, and every path
# written in the code (outside comments) is looked at. Exit status 1 names each offence.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT/server/src"

perl -e '
use strict; use warnings;
my $MAX_METHODS = 15;
my @offences;

sub code_of {
    my ($file) = @_;
    open my $fh, "<", $file or die "$file: $!";
    my @lines;
    while (my $line = <$fh>) {
        next if $line =~ m{^\s*//};          # comments and doc comments
        $line =~ s{\s//\s.*$}{};             # a comment after code
        push @lines, $line;
    }
    return join "", @lines;
}

# The full paths of a use tree: "crate::{a::{b, c}, d}" gives crate::a::b, crate::a::c, crate::d.
sub expand {
    my ($prefix, $tree) = @_;
    $tree =~ s/^\s+|\s+$//g;
    if ($tree =~ /^(.*?)\{(.*)\}$/s) {
        my ($head, $inner) = ($1, $2);
        my @parts; my $depth = 0; my $cur = "";
        for my $ch (split //, $inner) {
            if ($ch eq "{") { $depth++ } elsif ($ch eq "}") { $depth-- }
            if ($ch eq "," && $depth == 0) { push @parts, $cur; $cur = ""; next }
            $cur .= $ch;
        }
        push @parts, $cur;
        return map { expand($prefix . $head, $_) } grep { /\S/ } @parts;
    }
    return ($prefix . $tree);
}

sub paths_of {
    my ($code) = @_;
    my @paths;
    while ($code =~ /\buse\s+([^;]+);/g) { push @paths, expand("", $1) }
    while ($code =~ /\b((?:crate|tonic|sqlx|telesub_client)(?:::\w+)+)/g) { push @paths, $1 }
    return @paths;
}

sub check_layer {
    my ($dir, @forbidden) = @_;
    for my $file (split /\n/, `find $dir -name "*.rs" | sort`) {
        my %seen;
        for my $path (paths_of(code_of($file))) {
            $path =~ s/\s+as\s+\w+\s*$//; $path =~ s/\s+//g;
            for my $f (@forbidden) {
                if (($path eq $f || index($path, "${f}::") == 0) && !$seen{$f}++) {
                    (my $shown = "server/src/$file") =~ s{/\./}{/};
                    my $layer = $dir eq "." ? "hub" : $dir;
                    push @offences, "$shown uses $f ($path): the $layer layer must not";
                }
            }
        }
    }
}

check_layer("domain", "crate::storage", "crate::transport", "crate::export", "tonic", "sqlx");
check_layer("transport", "crate::storage");
check_layer("console", "crate::storage");
check_layer("read_model.rs", "crate::storage", "crate::transport", "tonic", "sqlx");
check_layer("read_model", "crate::storage", "crate::transport", "tonic", "sqlx");
check_layer(".", "telesub_client");
push @offences, "server/Cargo.toml names telesub-client: the hub must not depend on the client SDK"
    if `grep -c "telesub-client" ../Cargo.toml` > 0;

print "ports (traits under server/src/domain/ports/) and their methods:\n";
for my $file (split /\n/, `find domain/ports -name "*.rs" | sort`) {
    my $code = code_of($file);
    while ($code =~ /^pub trait (\w+)[^{]*\{(.*?)^\}/msg) {
        my ($name, $body) = ($1, $2);
        my $n = () = $body =~ /^\s*(?:async\s+)?fn\s+\w+/mg;
        printf "  %-22s %3d  server/src/%s\n", $name, $n, $file;
        push @offences, "port $name has $n methods, more than $MAX_METHODS: split it by concept" if $n > $MAX_METHODS;
    }
}

if (@offences) {
    print STDERR "layering check FAILED:\n";
    print STDERR "  $_\n" for @offences;
    exit 1;
}
print "layering check passed\n";
'
