#!/usr/bin/perl
# Client side of scripts/bench.sh: speaks the sync protocol to a running
# mod_dme and times what the benchmark reports. Three modes:
#
#   sync-bench.pl sizes  USER ROUNDS   import USER's INBOX, then ROUNDS
#       times (a) one new mail + push note + background build + timed
#       sync from the pre-cache, (b) one new mail + timed sync from the
#       mail system. Prints one tab-separated RESULT line.
#   sync-bench.pl clients USER COUNT   enrol and import COUNT clients, sync
#       each once more; prints "client key prev_key" per client.
#   sync-bench.pl seq USER SECONDS     sequential syncs of an unchanged
#       folder, each with the key of the answer before (the STATUS path).
#
# The server comes from the environment: BENCH_URL (http://127.0.0.1:P),
# BENCH_IMAP_PORT, BENCH_PASSWORD (every bench user's, in Apache and
# Dovecot alike), BENCH_ADMIN and BENCH_ADMIN_PASSWORD (push and counters).
use strict;
use warnings;
use HTTP::Tiny;
use MIME::Base64 qw(encode_base64);
use Mail::IMAPClient;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

my $URL      = $ENV{BENCH_URL} or die "BENCH_URL is not set\n";
my $PASSWORD = $ENV{BENCH_PASSWORD} or die "BENCH_PASSWORD is not set\n";
my $ADMIN    = $ENV{BENCH_ADMIN} or die "BENCH_ADMIN is not set\n";
my $ADMIN_PW = $ENV{BENCH_ADMIN_PASSWORD}
    or die "BENCH_ADMIN_PASSWORD is not set\n";
my $BUILD_TIMEOUT = 120;

# HTTP::Tiny writes a request's head and body separately; with Nagle's
# algorithm on, the body then waits for the server's delayed ACK (40 ms
# on Linux), which would be measured as the module's time. The sockets
# of this client send at once.
package NoDelayTiny {
    use parent -norequire, 'HTTP::Tiny';
    use Socket qw(IPPROTO_TCP TCP_NODELAY);

    sub _open_handle {
        my $self   = shift;
        my $handle = $self->SUPER::_open_handle(@_);
        setsockopt($handle->{fh}, IPPROTO_TCP, TCP_NODELAY, 1)
            or die "TCP_NODELAY: $!\n";
        return $handle;
    }
}

# One keep-alive connection for the timed requests: connection set-up is
# not what is measured.
my $http = NoDelayTiny->new(keep_alive => 1, timeout => 300);
my $side = NoDelayTiny->new(keep_alive => 1, timeout => 60);

sub note { print STDERR "  ", @_, "\n" }

sub auth { 'Basic ' . encode_base64("$_[0]:$_[1]", '') }

sub post_xml {
    my ($ua, $user, $path, $xml) = @_;
    my $t0  = time;
    my $res = $ua->request('POST', "$URL$path", {
        headers => {'Content-Type' => 'application/xml',
                    Authorization  => auth($user, $PASSWORD)},
        content => $xml});
    return ($res, time - $t0);
}

sub enrol {
    my ($user) = @_;
    my ($res) = post_xml($side, $user, '/dme/clients',
                         '<enrol xmlns="urn:dme:1"><name>bench</name>'
                         . '<platform>bench</platform></enrol>');
    $res->{status} == 201 && $res->{content} =~ /<client id="([^"]+)"/
        or die "enrol $user: HTTP $res->{status} $res->{content}\n";
    return $1;
}

sub sync_body {
    my ($client, $key) = @_;
    return '<sync xmlns="urn:dme:1"><client>' . $client . '</client>'
         . '<folder>INBOX</folder><type>'
         . (defined $key ? 'push' : 'import') . '</type>'
         . (defined $key ? "<key>$key</key>" : '') . '</sync>';
}

# The attributes of a sync answer and the refs of its adds.
sub parse_sync {
    my ($xml) = @_;
    my %s;
    my ($root) = $xml =~ /<sync ([^>]*?)\/?>/ or return;
    for my $a (qw(key source more)) {
        ($s{$a}) = $root =~ /\b$a="([^"]*)"/;
    }
    $s{adds}    = [$xml =~ /<add ref="([^"]+)"/g];
    $s{changes} = () = $xml =~ /<change /g;
    $s{deletes} = () = $xml =~ /<delete /g;
    return \%s;
}

# One sync; returns the parsed answer and the seconds it took.
sub sync {
    my ($ua, $user, $client, $key) = @_;
    my ($res, $dt) = post_xml($ua, $user, '/dme/sync', sync_body($client, $key));
    $res->{status} == 200
        or die "sync of $user: HTTP $res->{status} $res->{content}\n";
    my $s = parse_sync($res->{content})
        or die "sync of $user: unreadable answer\n";
    return ($s, $dt);
}

# Import every page; returns the key and the seconds the import took.
sub import_all {
    my ($user, $client) = @_;
    my ($s, $dt) = sync($http, $user, $client, undef);
    my ($total, $mails, $pages) = ($dt, scalar @{$s->{adds}}, 1);
    while ($s->{more} eq 'true') {
        ($s, $dt) = sync($http, $user, $client, $s->{key});
        $total += $dt;
        $mails += @{$s->{adds}};
        $pages++;
    }
    return ($s->{key}, $total, $mails, $pages);
}

sub counters {
    my $res = $side->request('GET', "$URL/dme/admin/counters",
                             {headers => {Authorization => auth($ADMIN, $ADMIN_PW)}});
    $res->{status} == 200 or die "counters: HTTP $res->{status}\n";
    my %c = $res->{content} =~ /^(\w+): (\d+)$/mg;
    return \%c;
}

sub push_note {
    my ($user, $uidvalidity, $uid) = @_;
    my $json = sprintf('{"user":"%s","event":"messageNew","folder":"INBOX",'
                       . '"imap-uidvalidity":%u,"imap-uid":%u}',
                       $user, $uidvalidity, $uid);
    my $res = $side->request('PUT', "$URL/dme/push", {
        headers => {'Content-Type' => 'application/json',
                    Authorization  => auth($ADMIN, $ADMIN_PW)},
        content => $json});
    $res->{status} == 204 or die "push: HTTP $res->{status} $res->{content}\n";
}

# Waits until the builds counter passes $above; returns the seconds.
sub wait_build {
    my ($above) = @_;
    my $t0 = time;
    while (time - $t0 < $BUILD_TIMEOUT) {
        return time - $t0 if counters()->{builds} > $above;
        sleep 0.01;
    }
    die "no pre-cache build within ${BUILD_TIMEOUT}s\n";
}

sub imap_session {
    my ($user) = @_;
    my $imap = Mail::IMAPClient->new(
        Server => '127.0.0.1', Port => $ENV{BENCH_IMAP_PORT}, User => $user,
        Password => $PASSWORD, Uid => 1, Timeout => 60)
        or die "IMAP login as $user: $@\n";
    return $imap;
}

my $serial = 0;

# Appends one small mail dated now; returns its UID.
sub append_one {
    my ($imap, $user) = @_;
    $serial++;
    my $msg = "From: Bench Sender <bench\@example.org>\r\n"
            . "To: $user\@example.org\r\n"
            . "Subject: bench mail $serial\r\n"
            . "Message-ID: <bench.$$.$serial." . int(time) . "\@example.org>\r\n"
            . "Date: " . strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime) . "\r\n"
            . "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            . "Benchmark mail number $serial.\r\n";
    my $uid = $imap->append_string('INBOX', $msg)
        or die "APPEND: " . $imap->LastError . "\n";
    return $uid;
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return 'NaN' unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# "12" when every value is 12, else "min-max".
sub span {
    my @v = sort { $a <=> $b } @_;
    return $v[0] == $v[-1] ? "$v[0]" : "$v[0]-$v[-1]";
}

# One timed sync that must bring exactly the mail with $uid from $source.
sub timed_round {
    my ($user, $client, $keyref, $uid, $source) = @_;
    my $c0 = counters();
    my ($s, $dt) = sync($http, $user, $client, $$keyref);
    my $c1 = counters();
    $$keyref = $s->{key};
    my $ok = $s->{source} eq $source && @{$s->{adds}} == 1
          && $s->{adds}[0] =~ /:\Q$uid\E$/ && !$s->{changes} && !$s->{deletes};
    note(sprintf('%-11s %7.2f ms, source %s, %d add(s)%s', $source,
                 $dt * 1000, $s->{source}, scalar @{$s->{adds}},
                 $ok ? '' : '  <-- NOT AS EXPECTED'));
    return ($dt, $c1->{sync_imap_commands} - $c0->{sync_imap_commands}, $ok);
}

sub mode_sizes {
    my ($user, $rounds) = @_;
    my $imap   = imap_session($user);
    my $client = enrol($user);
    my ($key, $imp, $mails, $pages) = import_all($user, $client);
    note(sprintf('%s: imported %d mails in %d page(s), %.2f s',
                 $user, $mails, $pages, $imp));
    my $uidvalidity = $imap->uidvalidity('INBOX')
        or die "no UIDVALIDITY: " . $imap->LastError . "\n";
    my (@ta, @tb, @ca, @cb, @build);
    my $bad = 0;
    # Round 0 warms the server's IMAP sessions and is not counted.
    for my $round (0 .. $rounds) {
        my $uid = append_one($imap, $user);
        my $builds = counters()->{builds};
        push_note($user, $uidvalidity, $uid);
        my $waited = wait_build($builds);
        my ($dt, $cmds, $ok) = timed_round($user, $client, \$key, $uid,
                                           'pre-cache');
        my @a = ($dt, $cmds, $ok, $waited);
        $uid = append_one($imap, $user);
        ($dt, $cmds, $ok) = timed_round($user, $client, \$key, $uid,
                                        'mail-system');
        next if $round == 0;
        push @ta, $a[0];
        push @ca, $a[1];
        push @build, $a[3];
        push @tb, $dt;
        push @cb, $cmds;
        $bad += !$a[2] + !$ok;
    }
    $imap->logout;
    my ($ma, $mb) = (median(@ta), median(@tb));
    printf "RESULT\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.1f\t%s\t%s\t%.2f\t%d\n",
        $user, $mails, $rounds, $imp, $ma * 1000, $mb * 1000, $mb / $ma,
        span(@ca), span(@cb), median(@build), $bad;
}

sub mode_clients {
    my ($user, $count) = @_;
    for (1 .. $count) {
        my $client = enrol($user);
        my ($key) = import_all($user, $client);
        my ($s) = sync($http, $user, $client, $key);
        print "$client $s->{key} $key\n";
    }
}

sub mode_seq {
    my ($user, $secs) = @_;
    my $client = enrol($user);
    my ($key) = import_all($user, $client);
    my ($s) = sync($http, $user, $client, $key); # stores the STATUS tuple
    $key = $s->{key};
    my $c0 = counters();
    my (@t, %src);
    my $t0 = time;
    while (time - $t0 < $secs) {
        my ($s, $dt) = sync($http, $user, $client, $key);
        $key = $s->{key};
        push @t, $dt;
        $src{$s->{source}}++;
    }
    my $wall = time - $t0;
    my $c1 = counters();
    my $n = @t;
    printf "SEQ\t%d\t%.1f\t%.2f\t%.2f\t%s\t%s\n", $n, $n / $wall,
        median(@t) * 1000,
        ($c1->{sync_imap_commands} - $c0->{sync_imap_commands}) / ($n || 1),
        join(',', map {"$_=$src{$_}"} sort keys %src),
        $c1->{status_hits} - $c0->{status_hits};
}

my ($mode, @args) = @ARGV;
$mode ||= '';
if ($mode eq 'sizes' && @args == 2) {
    mode_sizes(@args);
} elsif ($mode eq 'clients' && @args == 2) {
    mode_clients(@args);
} elsif ($mode eq 'seq' && @args == 2) {
    mode_seq(@args);
} else {
    die "usage: $0 sizes USER ROUNDS | clients USER COUNT | seq USER SECONDS\n";
}
