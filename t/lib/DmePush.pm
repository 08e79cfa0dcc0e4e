# Helpers for the pre-cache suites: delivery through dovecot-lda (which
# makes Dovecot push to the module), the module's counters, long-polls in
# a child process, and raw memcached access.
package DmePush;

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(time sleep);
use DmeTest;

our @EXPORT = qw(deliver push_enable counters wait_for_counter
                 start_wait finish_wait memcached_dump svc);

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
