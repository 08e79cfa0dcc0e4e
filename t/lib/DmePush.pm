# Helpers for the pre-cache suites: delivery through dovecot-lda (which
# makes Dovecot push to the module), the module's counters, long-polls in
# a child process, and raw memcached access.
package DmePush;

use strict;
use warnings;
use Exporter 'import';
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(time sleep);
use DmeTest;

our @EXPORT = qw(deliver push_enable counters wait_for_counter
                 start_wait finish_wait memcached_dump svc push_put
                 settle_builds hook_start hook_requests hook_stop
                 precache_value fresh_workers);

sub svc { system("$ENV{DME_REPO}/scripts/services.sh", @_) == 0
              or die "services.sh @_ failed" }

sub push_enable { svc('push-enable', services(), $_[0]) }

# Deliver a mail through dovecot-lda; returns the raw text delivered.
sub deliver {
    my ($user, $subject, $body) = @_;
    my $file = services() . "/deliver.$$." . int(rand(1e9));
    my $msg = "From: Pusher Person <pusher\@example.net>\n"
            . "To: $user\@example.org\nSubject: $subject\n"
            . "Message-ID: <" . time() . ".$$." . int(rand(1e9)) . "\@push>\n"
            . "Date: Thu, 03 Dec 2026 10:00:00 +0000\n\n"
            . ($body || "Body of $subject\n");
    open my $fh, '>', $file or die $!;
    print $fh $msg;
    close $fh;
    svc('deliver', services(), $user, $file);
    unlink $file;
    return $msg;
}

sub counters {
    my $res = request(method => 'GET', path => '/dme/admin/counters',
                      user => $ENV{DME_PUSH_USER},
                      password => $ENV{DME_PUSH_PASSWORD});
    my %c = $res->content =~ /^(\w+): (\d+)$/mg;
    return \%c;
}

# Wait until a counter passes a value; returns the seconds waited or undef.
sub wait_for_counter {
    my ($name, $above, $limit) = @_;
    my $t0 = time;
    while (time - $t0 < ($limit || 10)) {
        return time - $t0 if counters()->{$name} > $above;
        sleep 0.1;
    }
    return undef;
}

# A long-poll in a child process; finish_wait gives its status, body and
# the time it returned.
sub start_wait {
    my (%a) = @_;
    my $out = services() . "/wait.$$." . int(rand(1e9));
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        my $res = request(path => '/dme/wait', user => $a{user} || 'alice',
                          password => $a{password} || 'alice-secret',
                          body => '<wait xmlns="urn:dme:1"><client>'
                                  . $a{client} . '</client><folder>'
                                  . ($a{folder} || 'INBOX')
                                  . '</folder></wait>');
        open my $fh, '>', $out or POSIX::_exit(1);
        print $fh time(), "\n", $res->code, "\n", $res->content;
        close $fh;
        POSIX::_exit(0);
    }
    return {pid => $pid, out => $out};
}

sub finish_wait {
    my ($w) = @_;
    waitpid($w->{pid}, 0);
    open my $fh, '<', $w->{out} or return;
    my ($t, $code, @body) = <$fh>;
    chomp($t, $code);
    unlink $w->{out};
    return {time => $t, code => $code, body => join('', @body)};
}

# A change notification PUT to /dme/push as the push user (or as user and
# password given); the body is sent as given, bytes.
sub push_put {
    my ($body, %a) = @_;
    return request(method => $a{method} || 'PUT', path => '/dme/push',
                   user => $a{user} // $ENV{DME_PUSH_USER},
                   password => $a{password} // $ENV{DME_PUSH_PASSWORD},
                   type => 'application/json', body => $body);
}

# A graceful restart of the test httpd, so the suite runs in fresh
# worker processes: a memcached connection a process pooled before an
# earlier suite restarted memcached fails at its next use, whenever that
# comes. The counters start again at zero.
sub fresh_workers {
    my $resumed = qr/resuming normal operations/;
    my $n0 = () = error_log_lines($resumed);
    my $pidfile = Apache::Test::vars('t_logs') . '/httpd.pid';
    open my $fh, '<', $pidfile or die "$pidfile: $!";
    my ($pid) = (<$fh> // '') =~ /(\d+)/;
    close $fh;
    kill('USR1', $pid // 0) or die 'cannot signal httpd';
    my $t0 = time;
    while ((() = error_log_lines($resumed)) <= $n0) {
        die 'httpd did not restart' if time - $t0 > 30;
        sleep 0.1;
    }
    sleep 1; # the new processes take over the listeners
}

# Waits until no build has finished for `quiet` seconds (the STATUS poll
# may still be building after earlier changes); returns the builds count.
sub settle_builds {
    my ($quiet, $limit) = @_;
    my ($t0, $last) = (time, counters()->{builds});
    my $since = $t0;
    while (time - $t0 < ($limit || 20)) {
        sleep 0.25;
        my $now = counters()->{builds};
        if ($now != $last) {
            ($last, $since) = ($now, time);
        } elsif (time - $since >= ($quiet || 2.5)) {
            last;
        }
    }
    return $last;
}

# A client's push endpoint: an HTTP server on a free loopback port, in a
# child process, answering 204 to everything and recording each request.
sub hook_start {
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Proto => 'tcp', Listen => 8,
                                    ReuseAddr => 1) or die "listen: $!";
    my $file = services() . "/hook.$$." . int(rand(1e9));
    open my $fh, '>', $file or die "$file: $!";
    close $fh;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        alarm 300; # never outlive the test by much
        while (my $c = $srv->accept) {
            my ($head, $body) = ('', '');
            while (defined(my $l = <$c>)) {
                $head .= $l;
                last if $l =~ /^\r?\n\z/;
            }
            my ($len) = $head =~ /^Content-Length:[ \t]*(\d+)/mi;
            read($c, $body, $len) if $len;
            open my $out, '>>', $file or POSIX::_exit(1);
            print $out unpack('H*', $head), ' ', unpack('H*', $body), "\n";
            close $out;
            print $c "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
            close $c;
        }
        POSIX::_exit(0);
    }
    my $port = $srv->sockport;
    close $srv;
    return {pid => $pid, port => $port, file => $file};
}

# The requests the endpoint received so far: method, path, headers (lower
# case names) and body of each.
sub hook_requests {
    my ($h) = @_;
    open my $fh, '<', $h->{file} or return ();
    my @out;
    while (my $line = <$fh>) {
        my ($hh, $bh) = split ' ', $line;
        my $head = pack('H*', $hh);
        my ($method, $path) = $head =~ /^(\S+) (\S+)/;
        my %hdr;
        for (split /\r?\n/, $head) {
            $hdr{lc $1} = $2 if /^([^:\s]+):[ \t]*(.*)$/;
        }
        push @out, {method => $method, path => $path, headers => \%hdr,
                    body => pack('H*', $bh // '')};
    }
    return @out;
}

sub hook_stop {
    my ($h) = @_;
    kill 'TERM', $h->{pid};
    waitpid($h->{pid}, 0);
    unlink $h->{file};
}

# The pre-cache of a user's folder as memcached holds it: the head item
# under "dme:pc:" and the SHA-256 of "user\nfolder" (user and folder as
# UTF-8 bytes), then its chunks; undef if absent or not whole. In list
# context also the head's fields.
sub precache_value {
    my ($user, $folder) = @_;
    my $head_key = 'dme:pc:' . sha256_hex("$user\n$folder");
    my ($head) = _mc_get($head_key);
    return unless defined $head
        && $head =~ /^DMEB1 (\d{20}) (\d{5}) ([0-9a-f]{16}) ([0-9a-f]{64})$/;
    my ($len, $n, $gen, $sum) = ($1 + 0, $2 + 0, $3, $4);
    my @parts = _mc_get(map { "$head_key:$gen:$_" } 0 .. $n - 1);
    return if grep { !defined } @parts;
    my $value = join '', @parts;
    return unless length($value) == $len && sha256_hex($value) eq $sum;
    return wantarray ? ($value, {key => $head_key, chunks => $n}) : $value;
}

sub _mc_socket {
    my ($host, $port) = split /:/, $ENV{DME_MC_ADDR} || "127.0.0.1:$ENV{DME_MC_PORT}";
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Timeout => 5);
    return $s || die "memcached: $!";
}

# Values of the given keys, undef for a missing one.
sub _mc_get {
    my $s = _mc_socket();
    my @out;
    for my $k (@_) {
        print $s "get $k\r\n";
        my $hdr = <$s>;
        my ($len) = $hdr =~ /^VALUE \S+ \d+ (\d+)/;
        if (!defined $len) {
            push @out, undef;
            next;
        }
        my $data = '';
        read($s, $data, $len + 2);
        <$s>; # END
        push @out, substr($data, 0, $len);
    }
    return @out;
}

# Every item memcached holds, as key => value.
sub memcached_dump {
    my ($host, $port) = split /:/, $ENV{DME_MC_ADDR} || "127.0.0.1:$ENV{DME_MC_PORT}";
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Timeout => 5) or die "memcached: $!";
    print $s "lru_crawler metadump all\r\n";
    my @keys;
    while (my $line = <$s>) {
        last if $line =~ /^END/;
        push @keys, $1 if $line =~ /^key=(\S+)/;
    }
    my %items;
    for my $k (@keys) {
        $k =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
        print $s "get $k\r\n";
        my $hdr = <$s>;
        next unless $hdr =~ /^VALUE \S+ \d+ (\d+)/;
        my $len = $1;
        my $data = '';
        read($s, $data, $len + 2);
        <$s>; # END
        $items{$k} = substr($data, 0, $len);
    }
    return \%items;
}

1;
