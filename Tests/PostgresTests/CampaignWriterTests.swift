import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest

/// What `CampaignWriter.held` reads before a one-page list's batch is written: the identities the
/// campaign holds, keyed by the database's trigger as the insert would key them, and the refusals
/// the insert would make. Nothing it reads may be taken from another channel's keys.
final class CampaignWriterTests: MigratedDatabaseCase {
    var user = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        user = try newUser()
    }

    func writer(channel: Channel) throws -> CampaignWriter {
        let campaign = try XCTUnwrap(connection.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, $2) RETURNING id", [user, channel.rawValue]).first).requiredString(0)
        return CampaignWriter(target: ImportTarget(userID: user, campaignID: campaign, listID: UUID().uuidString.lowercased(),
                                                   channel: channel, storage: .rows))
    }

    func addLead(_ writer: CampaignWriter, email: String?, linkedin: String? = nil) throws {
        try connection.query("INSERT INTO campaign_leads (campaign_id, user_id, email, linkedin_url) VALUES ($1, $2, $3, $4)",
                             [writer.target.campaignID, user, email, linkedin])
    }

    func testItAnswersTheIdentitiesTheCampaignHoldsAsTheTriggerKeyedThem() throws {
        let writer = try writer(channel: .email)
        // Written by another writer of the platform, as typed: the trigger keys them.
        try addLead(writer, email: "  Ada@Example.COM ")
        try addLead(writer, email: "grace@example.net")
        let asked = ["ada@example.com", "grace@example.net", "alan@example.org"].map { Email.normalized($0)! }
        XCTAssertEqual(try writer.held(asked, on: connection), .holds(["ada@example.com", "grace@example.net"]))
        XCTAssertEqual(try writer.held(["alan@example.org"], on: connection), .holds([]))
    }

    func testItRefusesAsTheInsertWould() throws {
        let stopped = try writer(channel: .email)
        try connection.query("UPDATE campaigns SET status = 'active' WHERE id = $1", [stopped.target.campaignID])
        XCTAssertEqual(try stopped.held(["a@example.com"], on: connection), .refused(.campaignNotDraft))

        let gone = CampaignWriter(target: ImportTarget(userID: user, campaignID: UUID().uuidString.lowercased(),
                                                       listID: UUID().uuidString.lowercased(), channel: .email, storage: .rows))
        XCTAssertEqual(try gone.held(["a@example.com"], on: connection), .refused(.campaignGone))
    }

    /// A campaign whose channel is not the one the import planned its batches for (it changed in
    /// between): its keys are another channel's, so none is taken as held and the insert decides.
    func testAnotherChannelsKeysAreNeverTakenAsHeld() throws {
        let email = try writer(channel: .email)
        try addLead(email, email: "ada@example.com")
        XCTAssertEqual(try email.held(["ada@example.com"], on: connection), .holds(["ada@example.com"]))
        let plannedForLinkedIn = CampaignWriter(target: ImportTarget(
            userID: user, campaignID: email.target.campaignID, listID: email.target.listID, channel: .linkedin, storage: .rows))
        XCTAssertEqual(try plannedForLinkedIn.held(["ada@example.com"], on: connection), .holds([]))
    }
}
