import Testing
@testable import Recording

@Test func placeholder() {}
