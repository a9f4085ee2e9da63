//! The session state machine driven by a synthetic clock: two sessions wired back to back
//! (a "link" that can drop packets), stepped 1 ms at a time.

use std::time::{Duration, Instant};

use crate::packet::{Diag, Packet, State};
use crate::session::{Action, Config, Discard, Session};

const MS: Duration = Duration::from_millis(1);

/// Two sessions and a link between them with a 1 ms delay.
struct Link {
    now: Instant,
    a: Session,
    b: Session,
    /// Packets in flight: (arrival, to_b, packet).
    wire: Vec<(Instant, bool, Packet)>,
    /// Deliver nothing from a to b / from b to a.
    cut_ab: bool,
    cut_ba: bool,
    /// Every state change seen: (time since start, which, from, to, diag).
    changes: Vec<(Duration, char, State, State, Diag)>,
    /// Every packet a sent: (time since start, packet).
    sent_a: Vec<(Duration, Packet)>,
    start: Instant,
}

impl Link {
    fn new(a: Config, b: Config) -> Link {
        let now = Instant::now();
        Link {
            now,
            a: Session::new(a, 0x1111, now),
            b: Session::new(b, 0x2222, now),
            wire: Vec::new(),
            cut_ab: false,
            cut_ba: false,
            changes: Vec::new(),
            sent_a: Vec::new(),
            start: now,
        }
    }

    fn absorb(&mut self, from_a: bool, out: Vec<Action>) {
        for act in out {
            match act {
                Action::Send(p) => {
                    if from_a {
                        self.sent_a.push((self.now - self.start, p));
                    }
                    let cut = if from_a { self.cut_ab } else { self.cut_ba };
                    if !cut {
                        self.wire.push((self.now + MS, from_a, p));
                    }
                }
                Action::Changed { from, to, diag } => self.changes.push((
                    self.now - self.start,
                    if from_a { 'a' } else { 'b' },
                    from,
                    to,
                    diag,
                )),
            }
        }
    }

    /// Runs for `d`, 1 ms at a time.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += MS;
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) =
                self.wire.drain(..).partition(|(at, _, _)| *at <= now);
            self.wire = rest;
            for (_, to_b, p) in due {
                let out = if to_b {
                    self.b.on_packet(now, &p)
                } else {
                    self.a.on_packet(now, &p)
                };
                self.absorb(!to_b, out.unwrap_or_default());
            }
            if self.a.next_deadline() <= now {
                let out = self.a.on_timer(now);
                self.absorb(true, out);
            }
            if self.b.next_deadline() <= now {
                let out = self.b.on_timer(now);
                self.absorb(false, out);
            }
        }
    }

    /// When `who` first went Down, and why.
    fn first_down(&self, who: char) -> (Duration, Diag) {
        self.changes
            .iter()
            .find(|c| c.1 == who && c.3 == State::Down)
            .map(|c| (c.0, c.4))
            .unwrap_or_else(|| panic!("{who} never went down: {:?}", self.changes))
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

fn fast() -> Config {
    Config::default()
}

/// A Down packet from a neighbor with discriminator `disc`, 100 ms x 3.
fn down_from(disc: u32) -> Packet {
    Packet {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        fin: false,
        cpi: false,
        auth: false,
        demand: false,
        detect_mult: 3,
        my_disc: disc,
        your_disc: 0,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
    }
}

#[test]
fn three_way_handshake_comes_up_within_a_second_then_runs_at_the_configured_rate() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(1000));
    assert_eq!(l.a.state(), State::Up, "{:?}", l.changes);
    assert_eq!(l.b.state(), State::Up);
    // Down -> Init -> Up on one side, Down -> Up on the other (it heard Init first).
    let a: Vec<_> = l
        .changes
        .iter()
        .filter(|c| c.1 == 'a')
        .map(|c| (c.2, c.3))
        .collect();
    assert_eq!(
        a,
        vec![(State::Down, State::Init), (State::Init, State::Up)]
    );
    let up_at = l.changes.iter().map(|c| c.0).max().expect("changes");
    assert!(up_at < Duration::from_millis(10), "up after {up_at:?}");
    // The Poll that took both to 100 ms completed.
    assert!(!l.a.polling() && !l.b.polling());
    let st = l.a.status();
    assert_eq!(st.tx_interval, Duration::from_millis(100));
    assert_eq!(st.detection_time, Duration::from_millis(300));
    assert_eq!(st.remote_disc, 0x2222);
    // Periodic packets: 75-90% of 100 ms apart once fast.
    let late: Vec<Duration> = l
        .sent_a
        .windows(2)
        .filter(|w| w[0].0 > Duration::from_millis(200))
        .map(|w| w[1].0 - w[0].0)
        .collect();
    assert!(late.len() >= 8, "{late:?}");
    for gap in late {
        assert!(
            gap >= Duration::from_millis(75) && gap <= Duration::from_millis(90),
            "gap {gap:?}"
        );
    }
}

#[test]
fn while_not_up_packets_go_out_no_faster_than_about_a_second() {
    let mut l = Link::new(fast(), fast());
    l.cut_ba = true;
    l.run(Duration::from_secs(5));
    assert_eq!(l.a.state(), State::Down);
    let gaps: Vec<Duration> = l.sent_a.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.len() >= 4, "{gaps:?}");
    for g in gaps {
        assert!(g >= Duration::from_millis(750), "gap {g:?}");
    }
    assert_eq!(l.sent_a[0].1.desired_min_tx, 1_000_000);
}

#[test]
fn a_silent_neighbor_is_down_after_the_detection_time() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    assert_eq!(l.a.state(), State::Up);
    l.cut_ba = true;
    let cut = l.elapsed();
    l.run(Duration::from_millis(500));
    let down = l.first_down('a');
    assert_eq!(down.1, Diag::ControlDetectionTimeExpired);
    // The last packet from b arrived at most ~90 ms before the cut: down within 300 ms of
    // it, never before.
    let after = down.0 - cut;
    assert!(
        after > Duration::from_millis(200) && after <= Duration::from_millis(300),
        "down {after:?} after the cut"
    );
    assert_eq!(
        l.a.remote_disc(),
        0,
        "the neighbor's discriminator is forgotten"
    );
    assert_eq!(l.a.status().downs, 1);
    // b hears a's Down and follows (then, hearing Down again, it moves to Init and waits).
    l.run(Duration::from_millis(1200));
    assert_ne!(l.b.state(), State::Up);
    assert!(
        l.changes
            .iter()
            .any(|c| c.1 == 'b' && c.3 == State::Down && c.4 == Diag::NeighborSignaledSessionDown)
    );
}

#[test]
fn detection_uses_the_slower_of_our_rx_and_their_tx_times_their_multiplier() {
    let slow_b = Config {
        min_tx: Duration::from_millis(250),
        min_rx: Duration::from_millis(50),
        multiplier: 5,
    };
    let mut l = Link::new(fast(), slow_b);
    l.run(Duration::from_secs(1));
    assert_eq!(l.a.status().detection_time, Duration::from_millis(1250));
    // b: a's tx 100 ms vs b's rx 50 ms -> 100 ms x a's multiplier 3.
    assert_eq!(l.b.status().detection_time, Duration::from_millis(300));
    // a sends at b's required rx or its own desired tx, whichever is slower.
    assert_eq!(l.a.status().tx_interval, Duration::from_millis(100));
    assert_eq!(l.b.status().tx_interval, Duration::from_millis(250));
}

#[test]
fn a_slower_tx_applies_only_after_the_final_and_the_peer_never_times_out() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    // Slow a down to 2 s; hold b's Finals back for 250 ms so the Poll is retransmitted.
    l.cut_ba = true;
    let out =
        l.a.set_intervals(l.now, Duration::from_secs(2), Duration::from_secs(2));
    l.absorb(true, out);
    assert!(l.a.polling());
    l.run(Duration::from_millis(250));
    // Still at 100 ms: the new TX is not in force before the Final.
    assert_eq!(l.a.status().tx_interval, Duration::from_millis(100));
    let polls = l
        .sent_a
        .iter()
        .filter(|(t, p)| *t > Duration::from_millis(500) && p.poll)
        .count();
    assert!(
        polls >= 2,
        "the Poll is repeated with every packet until Final: {polls}"
    );
    assert!(l.sent_a.iter().all(|(_, p)| !(p.poll && p.fin)));
    // The Final arrives: a sends every 2 s from now on, and b expects it.
    l.cut_ba = false;
    l.run(Duration::from_millis(300));
    assert!(!l.a.polling());
    assert_eq!(l.a.status().tx_interval, Duration::from_secs(2));
    assert_eq!(l.b.status().detection_time, Duration::from_secs(6));
    l.run(Duration::from_secs(10));
    assert_eq!(l.a.state(), State::Up);
    assert_eq!(l.b.state(), State::Up);
    assert!(
        l.changes.iter().all(|c| c.3 != State::Down),
        "{:?}",
        l.changes
    );
}

#[test]
fn a_faster_rx_is_not_used_for_detection_before_the_final() {
    let slow = Config {
        min_tx: Duration::from_secs(1),
        min_rx: Duration::from_secs(1),
        multiplier: 3,
    };
    let mut l = Link::new(slow, slow);
    l.run(Duration::from_secs(4));
    assert_eq!(l.a.state(), State::Up);
    assert_eq!(l.a.status().detection_time, Duration::from_secs(3));
    l.cut_ba = true;
    let out = l.a.set_intervals(
        l.now,
        Duration::from_millis(100),
        Duration::from_millis(100),
    );
    l.absorb(true, out);
    // No Final yet: detection still on the old 1 s RX (b also still sends every second).
    assert_eq!(l.a.status().detection_time, Duration::from_secs(3));
    // A faster TX applies at once, but b still requires 1 s between packets.
    assert_eq!(l.a.status().tx_interval, Duration::from_secs(1));
    l.cut_ba = false;
    l.run(Duration::from_secs(3));
    assert!(!l.a.polling());
    assert_eq!(
        l.a.status().detection_time,
        Duration::from_secs(3),
        "b still sends at 1 s"
    );
    assert_eq!(l.b.status().tx_interval, Duration::from_secs(1));
}

#[test]
fn a_poll_is_answered_at_once_with_final() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    let p = Packet {
        poll: true,
        ..l.sent_a.last().expect("sent").1
    };
    let out = l.b.on_packet(l.now, &p).expect("accepted");
    let fin = out
        .iter()
        .find_map(|a| match a {
            Action::Send(p) => Some(*p),
            Action::Changed { .. } => None,
        })
        .expect("a Final");
    assert!(fin.fin && !fin.poll);
}

#[test]
fn admin_down_takes_the_peer_down_with_neighbor_signaled_and_back_up_when_released() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    let out = l.a.set_admin_down(l.now, true, Diag::AdministrativelyDown);
    l.absorb(true, out);
    l.run(Duration::from_millis(50));
    assert_eq!(l.a.state(), State::AdminDown);
    assert_eq!(l.b.state(), State::Down);
    assert_eq!(l.b.status().remote_state, State::AdminDown);
    assert_eq!(l.b.status().diag, Diag::NeighborSignaledSessionDown);
    assert!(
        l.sent_a.last().is_some_and(
            |(_, p)| p.state == State::AdminDown && p.diag == Diag::AdministrativelyDown
        )
    );
    // Packets to an AdminDown session are discarded.
    let p = Packet {
        your_disc: 0x1111,
        ..l.sent_a.last().expect("sent").1
    };
    assert_eq!(l.a.on_packet(l.now, &p), Err(Discard::AdminDown));
    let out = l.a.set_admin_down(l.now, false, Diag::None);
    l.absorb(true, out);
    l.run(Duration::from_secs(3));
    assert_eq!(l.a.state(), State::Up);
    assert_eq!(l.b.state(), State::Up);
}

#[test]
fn packets_for_another_discriminator_with_authentication_or_demand_are_discarded() {
    let now = Instant::now();
    let mut s = Session::new(fast(), 7, now);
    let p = Packet {
        your_disc: 8,
        ..down_from(9)
    };
    assert_eq!(
        s.on_packet(now, &p),
        Err(Discard::Discriminator { got: 8, want: 7 })
    );
    let p = Packet { your_disc: 0, ..p };
    assert_eq!(
        s.on_packet(now, &Packet { auth: true, ..p }),
        Err(Discard::Authentication)
    );
    assert_eq!(
        s.on_packet(now, &Packet { demand: true, ..p }),
        Err(Discard::Demand)
    );
    assert_eq!(
        s.state(),
        State::Down,
        "nothing discarded changed the session"
    );
    assert!(s.on_packet(now, &p).is_ok());
    assert_eq!(s.state(), State::Init);
}

#[test]
fn a_neighbor_that_wants_nothing_gets_no_periodic_packets() {
    let now = Instant::now();
    let mut s = Session::new(fast(), 7, now);
    let p = Packet {
        desired_min_tx: 1_000_000,
        required_min_rx: 0,
        ..down_from(9)
    };
    let _ = s.on_packet(now, &p).expect("accepted");
    let later = now + Duration::from_secs(2);
    let sent = s
        .on_timer(later)
        .into_iter()
        .filter(|a| matches!(a, Action::Send(_)))
        .count();
    assert_eq!(sent, 0);
}

#[test]
fn a_planned_restart_resumes_the_session_and_the_peer_never_sees_it_go_down() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    // Before stopping: slow down to 5 s x 3, wait for the Final, save.
    let out =
        l.a.set_intervals(l.now, Duration::from_secs(5), Duration::from_secs(5));
    l.absorb(true, out);
    l.run(Duration::from_millis(20));
    assert!(!l.a.polling(), "slowed down");
    assert_eq!(l.b.status().detection_time, Duration::from_secs(15));
    let saved = l.a.saved();
    assert_eq!(saved.state, State::Up);
    assert_eq!(saved.desired_min_tx, 5_000_000);
    // The process is gone for 4 s: nothing from a.
    l.cut_ab = true;
    l.run(Duration::from_secs(4));
    assert_eq!(
        l.b.state(),
        State::Up,
        "the peer waits out the slow detection time"
    );
    // The new process resumes with the saved session and the configured intervals.
    let (a, out) = Session::resume(fast(), saved, l.now);
    l.a = a;
    l.cut_ab = false;
    l.absorb(true, out);
    l.run(Duration::from_millis(200));
    assert_eq!(l.a.state(), State::Up);
    assert_eq!(l.b.state(), State::Up);
    assert!(!l.a.polling(), "sped up again");
    assert_eq!(l.b.status().detection_time, Duration::from_millis(300));
    assert_eq!(l.a.status().detection_time, Duration::from_millis(300));
    assert!(
        l.changes.iter().all(|c| c.3 != State::Down),
        "{:?}",
        l.changes
    );
}

#[test]
fn a_restart_that_never_comes_back_times_out_at_the_slow_detection_time() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    let out =
        l.a.set_intervals(l.now, Duration::from_secs(5), Duration::from_secs(5));
    l.absorb(true, out);
    l.run(Duration::from_millis(20));
    l.cut_ab = true;
    let gone = l.elapsed();
    l.run(Duration::from_secs(16));
    let down = l.first_down('b');
    assert_eq!(down.1, Diag::ControlDetectionTimeExpired);
    assert!(down.0 - gone <= Duration::from_secs(15));
}

#[test]
fn a_resumed_session_whose_peer_forgot_it_comes_up_afresh() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    let saved = l.a.saved();
    // The peer restarted meanwhile: a new session, new discriminator.
    l.b = Session::new(fast(), 0x3333, l.now);
    let (a, out) = Session::resume(fast(), saved, l.now);
    l.a = a;
    l.absorb(true, out);
    l.run(Duration::from_secs(3));
    assert_eq!(l.a.state(), State::Up);
    assert_eq!(l.b.state(), State::Up);
    assert_eq!(l.a.remote_disc(), 0x3333);
}

#[test]
fn a_change_during_a_poll_applies_only_after_a_final_to_a_later_poll() {
    let mut l = Link::new(fast(), fast());
    l.run(Duration::from_millis(500));
    let now = l.now;
    let _ =
        l.a.set_intervals(now, Duration::from_secs(2), Duration::from_secs(2));
    let _ =
        l.a.set_intervals(now, Duration::from_secs(4), Duration::from_secs(4));
    let fin = Packet {
        poll: false,
        fin: true,
        your_disc: l.a.local_disc(),
        ..down_from(0x2222)
    };
    let fin = Packet {
        state: State::Up,
        ..fin
    };
    // The first Final may answer the first Poll: nothing slower applies yet.
    let _ = l.a.on_packet(now, &fin).expect("accepted");
    assert!(l.a.polling());
    assert_eq!(l.a.status().tx_interval, Duration::from_millis(100));
    // A Final after that covers the newest values.
    let _ = l.a.on_packet(now, &fin).expect("accepted");
    assert!(!l.a.polling());
    assert_eq!(l.a.status().tx_interval, Duration::from_secs(4));
}
