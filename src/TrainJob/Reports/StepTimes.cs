using System.Globalization;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>A run's stage times in one line, for the train output and report.html (report.json lists them).</summary>
internal static class StepTimes
{
    /// <summary>"inputs 97.6 s, fit 281.2 s, ..., save 0.5 s; 409.0 s in these stages".</summary>
    public static string Describe(IReadOnlyList<StepTime> steps) =>
        string.Create(CultureInfo.InvariantCulture, $"{StepTime.List(steps)}; {steps.Sum(s => s.Seconds):F1} s in these stages");
}
