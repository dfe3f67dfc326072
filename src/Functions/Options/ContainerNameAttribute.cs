using System.ComponentModel.DataAnnotations;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Options;

/// <summary>
/// A setting that names a blob container (or a queue: the same rule), checked by <see cref="ContainerNames"/>. An
/// unset or empty value is <see cref="RequiredAttribute"/>'s to refuse.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ContainerNameAttribute : ValidationAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext)
    {
        ArgumentNullException.ThrowIfNull(validationContext);
        return value is string { Length: > 0 } name && ContainerNames.Problem(name) is { } problem
            ? new ValidationResult($"{problem}.", validationContext.MemberName is { } member ? [member] : null)
            : ValidationResult.Success;
    }
}
