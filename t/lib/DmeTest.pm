# Helpers shared by the Apache::Test suites of mod_dme: a client speaking
# the XML protocol, an IMAP session to change mailboxes behind the
# server's back, and access to the test services.
package DmeTest;

use strict;
use warnings;
use Exporter 'import';
use Apache::TestRequest ();
use LWP::UserAgent ();
use HTTP::Request ();
use MIME::Base64 qw(encode_base64);
use Mail::IMAPClient ();
use Time::HiRes ();
use POSIX qw(strftime);

our @EXPORT = qw(base_url request enrol sync_req parse_sync imap_as
                 append_mail services stop_dovecot start_dovecot
                 error_log_lines internal_date);

sub base_url {
    return 'http://' . Apache::TestRequest::hostport();
}

# One HTTP request; returns the HTTP::Response.
sub request {
    my (%a) = @_;
    my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 0);
    my $req = HTTP::Request->new($a{method} || 'POST', base_url() . $a{path});
    if (defined $a{user}) {
        $req->header(Authorization => 'Basic '
                     . encode_base64("$a{user}:$a{password}", ''));
    }
    if (defined $a{body}) {
        $req->header('Content-Type' => $a{type} || 'application/xml');
        $req->content($a{body});
    }
    return $ua->request($req);
}

sub enrol {
    my ($user, $password, $base) = @_;
    my $res = request(path => ($base || '/dme') . '/clients', user => $user,
                      password => $password,
                      body => '<enrol xmlns="urn:dme:1"><name>Test phone'
                              . '</name><platform>test</platform></enrol>');
    return ($res, $res->decoded_content =~ /<client id="([^"]+)"/ ? $1 : undef);
}

# A sync request; key undef means a fresh import.
sub sync_req {
    my (%a) = @_;
    my $body = '<sync xmlns="urn:dme:1"><client>' . $a{client} . '</client>'
             . '<folder>' . ($a{folder} || 'INBOX') . '</folder>'
             . '<type>' . ($a{type} || (defined $a{key} ? 'manual' : 'import'))
             . '</type>'
             . (defined $a{key} ? "<key>$a{key}</key>" : '') . '</sync>';
    return request(path => ($a{base} || '/dme') . '/sync',
                   user => $a{user} || 'alice',
                   password => $a{password} || 'alice-secret', body => $body);
}

sub _unxml {
    my ($s) = @_;
    $s =~ s/&lt;/</g; $s =~ s/&gt;/>/g; $s =~ s/&quot;/"/g;
    $s =~ s/&apos;/'/g; $s =~ s/&amp;/&/g;
    return $s;
}

# The parts of a sync answer, as plain Perl data.
sub parse_sync {
    my ($xml) = @_;
    my %r = (adds => [], changes => [], deletes => []);
    ($r{root}) = $xml =~ /<sync ([^>]*?)\/?>/;
    for my $attr (qw(key source more folder)) {
        ($r{$attr}) = $r{root} =~ /\b$attr="([^"]*)"/ if $r{root};
    }
    while ($xml =~ /<add ref="([^"]+)" checksum="([0-9a-f]{32})">(.*?)<\/add>/gs) {
        my %a = (ref => $1, checksum => $2);
        my $inner = $3;
        while ($inner =~ /<(\w+)>(.*?)<\/\1>|<(\w+)\/>/gs) {
            if (defined $1) { $a{$1} = _unxml($2) } else { $a{$3} = '' }
        }
        push @{$r{adds}}, \%a;
    }
    while ($xml =~ /<change ref="([^"]+)" checksum="([0-9a-f]{32})">(.*?)<\/change>/gs) {
        my %c = (ref => $1, checksum => $2);
        my $inner = $3;
        $c{flags} = $inner =~ /<flags>(.*?)<\/flags>/ ? _unxml($1) : '';
        push @{$r{changes}}, \%c;
    }
    while ($xml =~ /<delete ref="([^"]+)"\/>/g) {
        push @{$r{deletes}}, $1;
    }
    return \%r;
}

sub services { return $ENV{DME_SERVICES_DIR} }

# An IMAP session as the user, straight to Dovecot.
sub imap_as {
    my ($user, $password) = @_;
    my $imap = Mail::IMAPClient->new(
        Server => '127.0.0.1', Port => $ENV{DME_IMAP_PORT},
        User => $user, Password => $password, Uid => 1, Timeout => 10)
        or die "IMAP login as $user failed: $@";
    return $imap;
}

# "03-Dec-2026 12:00:00 +0000" for days ago at noon UTC.
sub internal_date {
    my ($days_ago) = @_;
    my $t = time() - $days_ago * 86400;
    my @g = gmtime($t);
    return strftime('%d-%b-%Y 12:00:00 +0000', 0, 0, 12, @g[3 .. 5]);
}

# Append a mail; returns its UID.
sub append_mail {
    my ($imap, $folder, $subject, %o) = @_;
    if ($subject =~ /[^\x00-\x7f]/) {
        # a character string: send it as an RFC 2047 encoded word
        require Encode;
        $subject = '=?UTF-8?B?'
                 . encode_base64(Encode::encode('UTF-8', $subject), '') . '?=';
    }
    my $msg = "From: Test Sender <sender\@example.org>\r\n"
            . "To: Alice <alice\@example.org>\r\n"
            . "Subject: $subject\r\n"
            . "Message-ID: <" . join('.', time(), $$, rand(1e9)) . "\@test>\r\n"
            . "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            . "MIME-Version: 1.0\r\n"
            . "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            . ($o{body} || "Hello Alice,\r\nthis is $subject.\r\n");
    my $uid = $imap->append_string($folder, $msg, $o{flags},
                                   $o{date}) or die "APPEND: " . $imap->LastError;
    return wantarray ? ($uid, length $msg) : $uid;
}

sub stop_dovecot {
    system("$ENV{DME_REPO}/scripts/services.sh", 'dovecot-stop', services()) == 0
        or die "cannot stop dovecot";
}

sub start_dovecot {
    system("$ENV{DME_REPO}/scripts/services.sh", 'dovecot-start', services()) == 0
        or die "cannot start dovecot";
}

# Lines of the server's error log matching a pattern.
sub error_log_lines {
    my ($re) = @_;
    my $path = Apache::Test::vars('t_logs') . '/error_log';
    open my $fh, '<', $path or return ();
    return grep { /$re/ } <$fh>;
}

1;
